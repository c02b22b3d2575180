//! Views: the figures of docs/domain.md (`grant show --json`, `fund show --json`), with amounts
//! as decimal strings in the currency's decimals.

use crate::money::Amount;
use crate::world::{AgencyState, GrantState, World};
use serde::{Deserialize, Serialize};

/// A grant's figures, fields in the documented order (docs/domain.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GrantView {
    /// Grant id.
    pub grant: String,
    /// Fund id.
    pub fund: String,
    /// Title.
    pub title: String,
    /// State, e.g. `"active"`.
    pub status: String,
    /// The fund's currency code.
    pub currency: String,
    /// The proposal's figure.
    pub requested: String,
    /// The approved amount (0 before approval).
    pub amount: String,
    /// Sum of current allocations.
    pub allocated: String,
    /// amount - allocated.
    pub unallocated: String,
    /// Total disbursed.
    pub disbursed: String,
    /// Total expended.
    pub expended: String,
    /// Total refunded.
    pub refunded: String,
    /// Current agencies in assignment order.
    pub agencies: Vec<AgencyView>,
    /// The grant stream's version.
    pub version: u64,
    /// Position of the grant stream's last event.
    pub position: u64,
}

/// One agency's figures on a grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AgencyView {
    /// Agency id.
    pub agency: String,
    /// Whether it is the lead.
    pub lead: bool,
    /// Its allocation.
    pub allocation: String,
    /// Disbursed to it.
    pub disbursed: String,
    /// Its expenditures.
    pub expended: String,
    /// Its refunds.
    pub refunded: String,
    /// disbursed - expended - refunded.
    pub balance: String,
}

/// A fund's figures, fields in the documented order (docs/domain.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FundView {
    /// Fund id.
    pub fund: String,
    /// Name.
    pub name: String,
    /// Currency code.
    pub currency: String,
    /// Sum of contributions.
    pub received: String,
    /// Sum of commitments.
    pub committed: String,
    /// received - committed.
    pub available: String,
    /// Sum of its grants' disbursements.
    pub disbursed: String,
    /// Sum of its grants' refunds.
    pub refunded: String,
    /// received - disbursed + refunded.
    pub cash: String,
    /// How many grants (any state).
    pub grants: u64,
    /// The fund stream's version.
    pub version: u64,
    /// Position of the fund stream's last event.
    pub position: u64,
}

/// What a human renderer may want beyond the figures.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct GrantDetails {
    /// Grant id.
    pub grant: String,
    /// Fund id.
    pub fund: String,
    /// Title.
    pub title: String,
    /// State.
    pub status: String,
    /// Who submitted the proposal.
    pub submitted_by: String,
    /// Recipient country (ISO 3166-1 alpha-2).
    pub country: Option<String>,
    /// Regions.
    pub regions: Vec<String>,
    /// Activities.
    pub activities: Vec<String>,
    /// Planned start, `YYYY-MM-DD`.
    pub starts_on: Option<String>,
    /// Planned end, `YYYY-MM-DD`.
    pub ends_on: Option<String>,
    /// Approval date.
    pub decided_on: Option<String>,
    /// Operational closure date.
    pub closed_on: Option<String>,
    /// The lead agency.
    pub lead: Option<String>,
    /// The grant's current commitment of fund money.
    pub commitment: String,
    /// The currency's decimals.
    pub decimals: u8,
}

impl World {
    /// A grant's figures.
    pub fn grant_view(&self, grant: &str) -> Option<GrantView> {
        let state = self.grants.get(grant)?;
        let decimals = state.currency.decimals();
        let money = |amount: Amount| amount.format(decimals);
        let stream = self.grant_stream_state(grant);
        let allocated = state.allocated();
        Some(GrantView {
            grant: state.grant.clone(),
            fund: state.fund.clone(),
            title: state.title.clone(),
            status: state.status.as_str().to_string(),
            currency: state.currency.code().to_string(),
            requested: money(state.requested),
            amount: money(state.amount),
            allocated: money(allocated),
            unallocated: money(state.amount - allocated),
            disbursed: money(state.disbursed),
            expended: money(state.expended),
            refunded: money(state.refunded),
            agencies: state
                .agencies
                .iter()
                .map(|agency| agency_view(agency, decimals))
                .collect(),
            version: stream.version,
            position: stream.position,
        })
    }

    /// A fund's figures.
    pub fn fund_view(&self, fund: &str) -> Option<FundView> {
        let state = self.funds.get(fund)?;
        let decimals = state.currency.decimals();
        let money = |amount: Amount| amount.format(decimals);
        let stream = self.fund_stream_state(fund);
        Some(FundView {
            fund: state.fund.clone(),
            name: state.name.clone(),
            currency: state.currency.code().to_string(),
            received: money(state.received),
            committed: money(state.committed),
            available: money(state.received - state.committed),
            disbursed: money(state.disbursed),
            refunded: money(state.refunded),
            cash: money(state.received - state.disbursed + state.refunded),
            grants: state.grants,
            version: stream.version,
            position: stream.position,
        })
    }

    /// The descriptive fields of a grant.
    pub fn grant_details(&self, grant: &str) -> Option<GrantDetails> {
        let state = self.grants.get(grant)?;
        Some(details(state))
    }
}

fn agency_view(agency: &AgencyState, decimals: u8) -> AgencyView {
    AgencyView {
        agency: agency.agency.clone(),
        lead: agency.lead,
        allocation: agency.allocation.format(decimals),
        disbursed: agency.disbursed.format(decimals),
        expended: agency.expended.format(decimals),
        refunded: agency.refunded.format(decimals),
        balance: agency.balance().format(decimals),
    }
}

fn details(state: &GrantState) -> GrantDetails {
    GrantDetails {
        grant: state.grant.clone(),
        fund: state.fund.clone(),
        title: state.title.clone(),
        status: state.status.as_str().to_string(),
        submitted_by: state.submitted_by.clone(),
        country: state
            .country
            .as_ref()
            .map(|country| country.code().to_string()),
        regions: state.regions.clone(),
        activities: state.activities.clone(),
        starts_on: state.starts_on.map(|date| date.to_string()),
        ends_on: state.ends_on.map(|date| date.to_string()),
        decided_on: state.decided_on.map(|date| date.to_string()),
        closed_on: state.closed_on.map(|date| date.to_string()),
        lead: state.lead().map(|agency| agency.agency.clone()),
        commitment: state.commitment().format(state.currency.decimals()),
        decimals: state.currency.decimals(),
    }
}
