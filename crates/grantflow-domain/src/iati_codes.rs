//! IATI code lists the commands check against, as IATI publishes them in
//! `docs/iati-2.03/codelists/` (a test checks these tables against those files): the active
//! OECD DAC 5-digit purpose codes (Sector, vocabulary 1) and the active organisation
//! registration agencies (the prefixes of an IATI organisation identifier).

/// Active DAC 5-digit sector codes, sorted.
#[rustfmt::skip]
pub const SECTOR_CODES: &[u32] = &[
    11110, 11120, 11130, 11182, 11220, 11230, 11231, 11232, 11240, 11250, 11260, 11320,
    11330, 11420, 11430, 12110, 12181, 12182, 12191, 12196, 12220, 12230, 12240, 12250,
    12261, 12262, 12263, 12264, 12281, 12310, 12320, 12330, 12340, 12350, 12382, 13010,
    13020, 13030, 13040, 13081, 13096, 14010, 14015, 14020, 14021, 14022, 14030, 14031,
    14032, 14040, 14050, 14081, 15110, 15111, 15112, 15113, 15114, 15116, 15117, 15118,
    15119, 15121, 15122, 15123, 15124, 15125, 15126, 15127, 15128, 15129, 15130, 15131,
    15132, 15133, 15134, 15135, 15136, 15137, 15142, 15143, 15144, 15150, 15151, 15152,
    15153, 15154, 15155, 15156, 15160, 15170, 15180, 15185, 15190, 15196, 15210, 15220,
    15230, 15240, 15250, 15261, 16010, 16011, 16012, 16013, 16014, 16015, 16020, 16030,
    16040, 16050, 16061, 16062, 16063, 16064, 16065, 16066, 16070, 16080, 21010, 21011,
    21012, 21013, 21020, 21021, 21022, 21023, 21024, 21030, 21040, 21050, 21061, 21081,
    22010, 22011, 22012, 22013, 22020, 22030, 22040, 23110, 23111, 23112, 23181, 23182,
    23183, 23210, 23220, 23230, 23231, 23232, 23240, 23250, 23260, 23270, 23310, 23320,
    23330, 23340, 23350, 23360, 23410, 23510, 23610, 23620, 23630, 23631, 23640, 23641,
    23642, 24010, 24020, 24030, 24040, 24050, 24081, 25010, 25020, 25030, 25040, 31110,
    31120, 31130, 31140, 31150, 31161, 31162, 31163, 31164, 31165, 31166, 31181, 31182,
    31191, 31192, 31193, 31194, 31195, 31210, 31220, 31261, 31281, 31282, 31291, 31310,
    31320, 31381, 31382, 31391, 32110, 32120, 32130, 32140, 32161, 32162, 32163, 32164,
    32165, 32166, 32167, 32168, 32169, 32170, 32171, 32172, 32173, 32174, 32182, 32210,
    32220, 32261, 32262, 32263, 32264, 32265, 32266, 32267, 32268, 32310, 33110, 33120,
    33130, 33140, 33150, 33181, 33210, 41010, 41020, 41030, 41040, 41081, 41082, 43010,
    43030, 43031, 43032, 43040, 43041, 43042, 43050, 43060, 43071, 43072, 43073, 43081,
    43082, 51010, 52010, 53030, 53040, 60010, 60020, 60030, 60040, 60061, 60062, 60063,
    72010, 72011, 72012, 72040, 72050, 73010, 74020, 91010, 93010, 93011, 93012, 93013,
    93014, 93015, 93016, 93017, 93018, 99810, 99820,
];

/// Active organisation registration agency codes, sorted.
#[rustfmt::skip]
pub const ORGANISATION_AGENCIES: &[&str] = &[
    "AD-COA", "AE-ACCI", "AE-ADCD", "AE-AFZ", "AE-COA", "AE-DCCI",
    "AE-DFSA", "AE-DIFC", "AE-DMCC", "AE-FCCI", "AE-FFZ", "AE-HFZA",
    "AE-RAKIA", "AE-RK_CR", "AE-SAIF", "AE-SCCI", "AE-UQCCI", "AF-CBR",
    "AF-COA", "AF-MOE", "AF-TIN", "AG-COA", "AI-COA", "AL-COA",
    "AL-QKB", "AM-COA", "AM-SRALE", "AO-COA", "AQ-COA", "AR-CENOC",
    "AR-COA", "AR-CUIT", "AS-COA", "AT-COA", "AT-FB", "AT-UID",
    "AT-ZVR", "AU-ABN", "AU-ACNC", "AU-COA", "AW-COA", "AX-COA",
    "AZ-COA", "AZ-IVI", "BA-COA", "BB-COA", "BD-COA", "BD-NAB",
    "BD-ROC", "BE-BCE_KBO", "BE-COA", "BF-COA", "BF-MATD", "BG-COA",
    "BG-EIK", "BH-COA", "BI-COA", "BI-NIF", "BJ-COA", "BJ-IFU",
    "BL-COA", "BM-COA", "BN-COA", "BO-CINS", "BO-COA", "BO-NIT",
    "BQ-COA", "BR-CNPJ", "BR-COA", "BS-COA", "BT-COA", "BV-COA",
    "BW-CIPA", "BW-COA", "BW-TIN", "BY-ADR", "BY-COA", "BZ-COA",
    "CA-CC", "CA-COA", "CA-CRA_ACR", "CA-GOV", "CA_AB-ABT", "CA_BC-BRC_CBR",
    "CA_MB-MTB", "CA_NB-NWB_NOB", "CA_NL-NFL_TNL", "CA_NS-NVS_NVE", "CA_NT-NWT_TNO", "CA_NU-NNV",
    "CA_ON-ONT", "CA_PE-PEI_IPE", "CA_QC-QBC", "CA_SK-SKN", "CA_YT-YKT", "CC-COA",
    "CD-COA", "CD-MJDH", "CF-COA", "CG-COA", "CH-COA", "CH-FDJP",
    "CH_BS-CR", "CI-COA", "CI-MOI", "CK-COA", "CL-COA", "CL-MP",
    "CL-RUT", "CM-COA", "CM-NIU", "CN-COA", "CN-SAIC", "CN-USCI",
    "CO-CCB", "CO-COA", "CO-RUE", "CR-COA", "CR-RPJ", "CU-COA",
    "CV-COA", "CW-COA", "CX-COA", "CY-COA", "CY-DRCOR", "CZ-COA",
    "CZ-DIC", "CZ-ICO", "DE-COA", "DE-CR", "DJ-COA", "DK-COA",
    "DK-CVR", "DM-COA", "DO-COA", "DZ-COA", "EC-COA", "EC-RUC",
    "EE-COA", "EE-KMKR", "EE-RIK", "EG-COA", "EG-CR", "EG-MOSS",
    "EH-COA", "ER-COA", "ES-COA", "ES-DIR3", "ES-MDJ", "ES-NIF",
    "ES-RMC", "ET-COA", "ET-CSA", "ET-MFA", "ET-MOT", "FI-COA",
    "FI-PRO", "FI-VERO", "FJ-COA", "FK-COA", "FM-COA", "FO-COA",
    "FR-COA", "FR-RCS", "GA-COA", "GB-CASC", "GB-CHC", "GB-COA",
    "GB-COE", "GB-COH", "GB-EDU", "GB-GOR", "GB-GOV", "GB-HESA",
    "GB-IRN", "GB-LAE", "GB-LANI", "GB-LAS", "GB-MPR", "GB-NHS",
    "GB-NIC", "GB-PLA", "GB-REV", "GB-SC", "GB-SCOTEDU", "GB-SHPE",
    "GB-SRS", "GB-UKPRN", "GB-WALEDU", "GD-COA", "GE-COA", "GE-NAPR",
    "GE-RS", "GF-COA", "GG-COA", "GG-RCE", "GH-COA", "GH-DSW",
    "GH-RGD", "GI-COA", "GL-COA", "GM-COA", "GN-COA", "GP-COA",
    "GQ-COA", "GR-COA", "GS-COA", "GT-CISP", "GT-COA", "GT-NIT",
    "GT-RPJ", "GU-COA", "GW-COA", "GY-COA", "HK-COA", "HK-CR",
    "HM-COA", "HN-COA", "HN-RTN", "HR-COA", "HR-MBS", "HR-OIB",
    "HT-COA", "HU-AFA", "HU-COA", "ID-COA", "ID-DJP", "ID-KHH",
    "ID-KLN", "ID-SMR", "IE-CHY", "IE-COA", "IE-CRO", "IL-COA",
    "IL-RA", "IL-ROC", "IM-COA", "IM-CR", "IM-GR", "IN-COA",
    "IN-MCA", "IN-MHA", "IO-COA", "IQ-COA", "IQ-NGO", "IR-COA",
    "IS-COA", "IS-KEN", "IT-CF", "IT-COA", "IT-CUUO", "JE-COA",
    "JE-FSC", "JE-JCR", "JM-COA", "JO-CCD", "JO-COA", "JO-MSD",
    "JP-COA", "JP-JCN", "KE-COA", "KE-KRA", "KE-NCB", "KE-RCO",
    "KG-COA", "KG-ID", "KG-INN", "KG-OKPO", "KG-TIN", "KH-COA",
    "KH-INGO", "KH-NNGO", "KI-COA", "KM-COA", "KN-COA", "KP-COA",
    "KR-BRN", "KR-COA", "KW-COA", "KY-COA", "KZ-BIN", "KZ-COA",
    "LA-COA", "LB-COA", "LB-CR", "LB-MOI", "LC-COA", "LI-COA",
    "LK-COA", "LK-DRC", "LK-NGO", "LR-COA", "LR-MFDPNGO", "LS-COA",
    "LT-COA", "LT-PVM", "LT-RC", "LU-COA", "LU-RCS", "LV-COA",
    "LV-RE", "LY-COA", "MA-COA", "MC-COA", "MC-RCI", "MD-COA",
    "MD-IDNO", "ME-COA", "MF-COA", "MG-COA", "MG-NIF", "MH-COA",
    "MK-COA", "ML-CCIM", "ML-COA", "ML-MAT", "ML-NIF", "MM-COA",
    "MM-MHA", "MN-COA", "MO-COA", "MP-COA", "MQ-COA", "MR-COA",
    "MS-COA", "MT-COA", "MU-COA", "MU-CR", "MV-COA", "MW-COA",
    "MW-NBM", "MW-RG", "MX-CMX_CPA", "MX-COA", "MX-CPA", "MX-RFC",
    "MY-COA", "MY-SSM", "MZ-COA", "MZ-CR", "MZ-MOJ", "MZ-NUIT",
    "NA-COA", "NA-NAMRA", "NC-COA", "NE-COA", "NE-DGI", "NF-COA",
    "NG-BPP", "NG-CAC", "NG-COA", "NG-TIN", "NI-COA", "NL-COA",
    "NL-KVK", "NL-OWMS", "NO-BRC", "NO-COA", "NP-COA", "NP-CRO",
    "NP-IRD", "NP-SWC", "NR-COA", "NU-COA", "NZ-COA", "OM-COA",
    "PA-COA", "PA-PRP", "PE-COA", "PE-RUC", "PE-SUNARP", "PF-COA",
    "PG-COA", "PH-COA", "PH-SEC", "PK-COA", "PK-NTN", "PK-SEC",
    "PK-VSWA", "PL-COA", "PL-KRS", "PL-NIP", "PL-REGON", "PM-COA",
    "PN-COA", "PR-COA", "PS-COA", "PS-MOI", "PS-TIN", "PT-COA",
    "PT-NIPPC", "PW-COA", "PY-COA", "PY-PGN", "PY-RUC", "QA-COA",
    "RE-COA", "RO-COA", "RO-CUI", "RS-APR", "RS-COA", "RS-PIB",
    "RU-COA", "RU-INN", "RU-OGRN", "RW-COA", "RW-RGB", "RW-RRA",
    "SA-COA", "SB-COA", "SC-COA", "SD-COA", "SE-COA", "SE-ON",
    "SG-ACRA", "SG-COA", "SG-COC", "SH-COA", "SI-COA", "SI-PRS",
    "SI-TIN", "SJ-COA", "SK-COA", "SK-ICO", "SK-ORSR", "SL-COA",
    "SL-NRA", "SL-OARG", "SM-COA", "SN-COA", "SN-NINEA", "SO-COA",
    "SO-MPND", "SR-COA", "SS-COA", "SS-RRC", "ST-COA", "SV-COA",
    "SV-NIT", "SX-COA", "SY-COA", "SZ-CIT", "SZ-COA", "TC-COA",
    "TD-COA", "TF-COA", "TG-COA", "TH-COA", "TH-MOI", "TH-TIN",
    "TJ-COA", "TK-COA", "TL-COA", "TM-COA", "TN-COA", "TN-RNE",
    "TO-COA", "TR-COA", "TR-MERSIS", "TR-MOI", "TT-COA", "TV-COA",
    "TW-COA", "TZ-BRLA", "TZ-COA", "TZ-NNCB", "TZ-TRA", "UA-COA",
    "UA-EDR", "UG-204CBO", "UG-COA", "UG-NGO", "UG-RSB", "UM-COA",
    "US-COA", "US-EIN", "US-USAGOV", "UY-COA", "UZ-COA", "UZ-KTUT",
    "VA-COA", "VC-COA", "VE-COA", "VG-COA", "VI-COA", "VN-COA",
    "VN-MOST", "VU-COA", "WF-COA", "WS-COA", "XE-EXAMPLE", "XI-DUNS",
    "XI-EORI", "XI-GRID", "XI-IATI", "XI-LEI", "XI-PB", "XI-PID",
    "XI-ROR", "XI-WIKIDATA", "XK-COA", "XM-DAC", "XM-OCHA", "XR-EUCB",
    "XR-NUTS", "YE-COA", "YE-CR", "YE-MSAL", "YT-COA", "ZA-CIP",
    "ZA-CIT", "ZA-COA", "ZA-NPO", "ZM-COA", "ZM-PCR", "ZM-RNGO",
    "ZW-COA", "ZW-PVO", "ZW-ROD", "ZZ-EBID",
];

/// Whether `code` is an active DAC 5-digit sector code.
pub fn is_sector_code(code: &str) -> bool {
    code.len() == 5
        && code.bytes().all(|b| b.is_ascii_digit())
        && code
            .parse::<u32>()
            .is_ok_and(|number| SECTOR_CODES.binary_search(&number).is_ok())
}

/// The registration agency an IATI organisation identifier starts with (`XM-DAC` of
/// `XM-DAC-41301`), if it starts with an active one followed by `-` and more.
pub fn organisation_agency(identifier: &str) -> Option<&'static str> {
    ORGANISATION_AGENCIES
        .iter()
        .copied()
        .filter(|agency| {
            identifier
                .strip_prefix(agency)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| !rest.is_empty())
        })
        .max_by_key(|agency| agency.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The active codes of an IATI codelist file, read plainly (`<codelist-item status=..>`
    /// then its `<code>`).
    fn active_codes(file: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs/iati-2.03/codelists")
            .join(file);
        let text = std::fs::read_to_string(&path).expect("the codelist file");
        let mut codes = Vec::new();
        for item in text.split("<codelist-item").skip(1) {
            let withdrawn = item
                .split('>')
                .next()
                .is_some_and(|attributes| attributes.contains("status=\"withdrawn\""));
            let code = item
                .split_once("<code>")
                .and_then(|(_, rest)| rest.split_once("</code>"))
                .map(|(code, _)| code.trim().to_string());
            if let (false, Some(code)) = (withdrawn, code) {
                codes.push(code);
            }
        }
        codes.sort();
        codes.dedup();
        codes
    }

    #[test]
    fn the_tables_are_the_published_codelists() {
        let sectors: Vec<String> = SECTOR_CODES.iter().map(u32::to_string).collect();
        assert_eq!(sectors, active_codes("Sector.xml"));
        let agencies: Vec<String> = ORGANISATION_AGENCIES
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(agencies, active_codes("OrganisationRegistrationAgency.xml"));
    }

    #[test]
    fn codes_and_identifiers_are_checked() {
        assert!(is_sector_code("15190") && is_sector_code("99810"));
        assert!(!is_sector_code("15199") && !is_sector_code("1519") && !is_sector_code("+5190"));
        assert_eq!(organisation_agency("XM-DAC-41301"), Some("XM-DAC"));
        assert_eq!(organisation_agency("XM-DAC-"), None);
        assert_eq!(organisation_agency("XI-GRANTFLOW-F1"), None);
    }
}
