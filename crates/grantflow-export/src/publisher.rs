//! The publisher of an IATI file: the reporting organisation's identifier, from the export's
//! option or the funds' own `iati_org_ref`, checked as the domain checks `iati_org_ref`.

use grantflow_domain::iati_codes::organisation_agency;
use grantflow_domain::FundState;

use crate::fold::ExportError;

/// The longest reporting-org ref accepted (as the domain's `iati_org_ref`).
pub const REPORTING_ORG_CHARS_MAX: usize = 128;

/// An IATI organisation identifier as the domain accepts `iati_org_ref`: 1 to
/// [`REPORTING_ORG_CHARS_MAX`] printable ASCII characters without spaces, `/`, `&`, `|` or
/// `?` (IATI rule 1.14.13), starting with an active registration agency's code from IATI's
/// OrganisationRegistrationAgency codelist and `-` (rule 1.14.8), e.g. `XM-DAC-41301`.
pub(crate) fn check_reporting_org(reporting_org: &str) -> Result<(), ExportError> {
    let clean = !reporting_org.is_empty()
        && reporting_org.len() <= REPORTING_ORG_CHARS_MAX
        && reporting_org
            .chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | '&' | '|' | '?'));
    if !clean {
        return Err(ExportError::BadOption(format!(
            "reporting org `{reporting_org}` is not an IATI organisation identifier such as XM-DAC-41301 \
             (1 to {REPORTING_ORG_CHARS_MAX} printable ASCII characters, without spaces, /, &, | or ?)"
        )));
    }
    if organisation_agency(reporting_org).is_none() {
        return Err(ExportError::BadOption(format!(
            "reporting org `{reporting_org}` does not start with a registration agency's code and `-` \
             (IATI's OrganisationRegistrationAgency codelist, e.g. XM-DAC in XM-DAC-41301; see org-id.guide)"
        )));
    }
    Ok(())
}

/// The one reporting organisation of a file holding `funds`: the option when given (checked),
/// else the funds' `iati_org_ref`, which must be set and the same for all of them (IATI: every
/// activity of a file carries the same reporting-org, the publisher's Registry identifier).
pub(crate) fn reporting_org_of<'a>(
    option: Option<&'a str>,
    funds: &[&'a FundState],
) -> Result<&'a str, ExportError> {
    if let Some(reporting_org) = option {
        check_reporting_org(reporting_org)?;
        return Ok(reporting_org);
    }
    let mut chosen: Option<(&FundState, &'a str)> = None;
    for fund in funds {
        let Some(reference) = fund.iati_org_ref.as_deref() else {
            return Err(ExportError::BadOption(format!(
                "no IATI organisation identifier to publish fund `{}` under: give yours with \
                 --reporting-org (HTTP: ?reporting_org=), e.g. --reporting-org XM-DAC-41301, or \
                 register the fund with `iati_org_ref`. Use the identifier your organisation is \
                 registered with on the IATI Registry (https://iatiregistry.org)",
                fund.fund
            )));
        };
        check_reporting_org(reference)?;
        match chosen {
            None => chosen = Some((fund, reference)),
            Some((first, known)) if known != reference => {
                return Err(ExportError::BadOption(format!(
                    "funds `{}` ({known}) and `{}` ({reference}) have different IATI organisation \
                     identifiers, and an IATI file has one reporting organisation: export each \
                     fund's grants on their own (--grant), or name the publisher with --reporting-org",
                    first.fund, fund.fund
                )));
            }
            Some(_) => {}
        }
    }
    chosen
        .map(|(_, reference)| reference)
        .ok_or_else(|| ExportError::BadOption("no fund to name a reporting organisation".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_checked_as_the_domain_checks_iati_org_ref() {
        assert!(check_reporting_org("XM-DAC-41301").is_ok());
        assert!(check_reporting_org("GB-CHC-1234567").is_ok());
        for bad in [
            "",
            "XM-DAC-4 1",
            "XM-DAC-41301/2",
            "XI-GRANTFLOW-UNTFHS",
            "XM-DAC-",
            "ZZ-NOPE-1",
        ] {
            assert!(check_reporting_org(bad).is_err(), "{bad:?}");
        }
    }
}
