//! What an activity is about and where: its `sector`s (OECD DAC 5-digit purpose codes, IATI
//! Sector vocabulary 1) and its recipients (`recipient-country`, or `recipient-region` 998),
//! with percentages that add up to exactly 100 (IATI rules 2.1.2, 3.1.2, 3.4.2).

use std::collections::BTreeMap;

use grantflow_domain::{GrantState, Status, World};

use crate::shares::{hundredths_by_weight, HUNDRED_PERCENT_HUNDREDTHS};

/// DAC 5-digit code 99810, "Sectors not specified": the sector of an activity that names none.
pub(crate) const SECTOR_NOT_SPECIFIED: &str = "99810";
/// IATI Region 998, "Developing countries, unspecified" (vocabulary 1, OECD DAC): the
/// recipient of an activity tied to no country.
pub(crate) const REGION_UNSPECIFIED: &str = "998";
/// The vocabulary of both codes above: 1, OECD DAC.
pub(crate) const DAC_VOCABULARY: &str = "1";

/// A code and its share in hundredths of a percent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Share {
    pub(crate) code: String,
    pub(crate) hundredths: i128,
}

/// An activity's recipients: countries, then at most one region (998).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Recipients {
    pub(crate) countries: Vec<Share>,
    pub(crate) region: Option<Share>,
}

/// A grant's sectors as it names them, or 99810 at 100 % when it names none.
pub(crate) fn grant_sectors(grant: &GrantState) -> Vec<Share> {
    if grant.sectors.is_empty() {
        return vec![whole(SECTOR_NOT_SPECIFIED)];
    }
    grant
        .sectors
        .iter()
        .map(|sector| Share {
            code: sector.code.clone(),
            hundredths: i128::from(sector.percentage.hundredths()),
        })
        .collect()
}

/// A grant's recipient: its country at 100 %, or region 998 when it names none.
pub(crate) fn grant_recipients(grant: &GrantState) -> Recipients {
    match &grant.country {
        Some(country) => Recipients {
            countries: vec![whole(country.code())],
            region: None,
        },
        None => Recipients {
            countries: Vec::new(),
            region: Some(whole(REGION_UNSPECIFIED)),
        },
    }
}

/// The grants that weigh in a fund's classification, with their weight: what each holds of
/// the fund (its commitment, docs/domain.md: the amount while approved, active, suspended or
/// closed; disbursed - refunded once cancelled or finalized; 0 for a proposal). Rejected
/// proposals are not published and weigh nothing.
fn weighted_grants<'w>(world: &'w World, fund: &str) -> Vec<(&'w GrantState, i128)> {
    world
        .fund_grant_ids(fund)
        .iter()
        .filter_map(|grant| world.grant(grant))
        .filter(|grant| grant.status != Status::Rejected)
        .map(|grant| (grant, grant.commitment().0.max(0)))
        .filter(|(_, weight)| *weight > 0)
        .collect()
}

/// A pooled fund's sectors (IATI guidance: a fund reports the sectors of what it funds):
/// each grant's sectors (99810 for one that names none) weighted by what the grant holds of
/// the fund, as shares that add up to exactly 100.00 (largest remainders; a share that
/// rounds to 0.00 is left out), in code order. A fund that holds no commitment yet is
/// published under 99810 at 100 %.
pub(crate) fn fund_sectors(world: &World, fund: &str) -> Vec<Share> {
    let mut weights: BTreeMap<String, i128> = BTreeMap::new();
    for (grant, weight) in weighted_grants(world, fund) {
        for sector in grant_sectors(grant) {
            *weights.entry(sector.code).or_default() += weight * sector.hundredths;
        }
    }
    let shares = shares_of(weights);
    if shares.is_empty() {
        return vec![whole(SECTOR_NOT_SPECIFIED)];
    }
    shares
}

/// A pooled fund's recipients: its grants' countries weighted by what each grant holds of the
/// fund, the grants tied to no country as region 998, with percentages that add up to exactly
/// 100.00 (largest remainders; a share that rounds to 0.00 is left out). A fund that holds no
/// commitment yet names region 998 at 100 %.
pub(crate) fn fund_recipients(world: &World, fund: &str) -> Recipients {
    let mut weights: BTreeMap<String, i128> = BTreeMap::new();
    let mut unspecified: i128 = 0;
    for (grant, weight) in weighted_grants(world, fund) {
        match &grant.country {
            Some(country) => *weights.entry(country.code().to_string()).or_default() += weight,
            None => unspecified += weight,
        }
    }
    // The region goes last so that, on a tie of remainders, the countries come first.
    let mut codes: Vec<(String, i128)> = weights.into_iter().collect();
    codes.push((REGION_UNSPECIFIED.to_string(), unspecified));
    let hundredths = hundredths_by_weight(&codes.iter().map(|(_, w)| *w).collect::<Vec<_>>());
    let mut recipients = Recipients::default();
    for ((code, _), hundredths) in codes.into_iter().zip(hundredths) {
        if hundredths == 0 {
            continue;
        }
        if code == REGION_UNSPECIFIED {
            recipients.region = Some(Share { code, hundredths });
        } else {
            recipients.countries.push(Share { code, hundredths });
        }
    }
    if recipients.countries.is_empty() && recipients.region.is_none() {
        recipients.region = Some(whole(REGION_UNSPECIFIED));
    }
    recipients
}

fn whole(code: &str) -> Share {
    Share {
        code: code.to_string(),
        hundredths: HUNDRED_PERCENT_HUNDREDTHS,
    }
}

/// The weights as shares that add up to 100.00, the zero shares left out.
fn shares_of(weights: BTreeMap<String, i128>) -> Vec<Share> {
    let codes: Vec<(String, i128)> = weights.into_iter().collect();
    let hundredths = hundredths_by_weight(&codes.iter().map(|(_, w)| *w).collect::<Vec<_>>());
    codes
        .into_iter()
        .zip(hundredths)
        .filter(|(_, hundredths)| *hundredths > 0)
        .map(|((code, _), hundredths)| Share { code, hundredths })
        .collect()
}
