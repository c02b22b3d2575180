//! The world: every fund and grant as the events left them, plus each stream's version and
//! last position. `evolve` folds one event in; the views read figures out.

use crate::money::{Amount, Currency};
use crate::values::{Country, Date};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

/// A grant's lifecycle state (docs/domain.md, "Lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A proposal, not yet decided.
    Proposed,
    /// Approved; nothing disbursed yet.
    Approved,
    /// At least one disbursement made.
    Active,
    /// Paused: no disbursements.
    Suspended,
    /// Operationally closed: only expenditures and refunds.
    Closed,
    /// Financially closed.
    Finalized,
    /// The proposal was rejected.
    Rejected,
    /// Stopped before its end.
    Cancelled,
}

impl Status {
    /// The state as the documents spell it, e.g. `"active"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Proposed => "proposed",
            Status::Approved => "approved",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Closed => "closed",
            Status::Finalized => "finalized",
            Status::Rejected => "rejected",
            Status::Cancelled => "cancelled",
        }
    }

    /// The state for its contract spelling.
    pub fn parse(text: &str) -> Option<Status> {
        STATUSES
            .iter()
            .copied()
            .find(|status| status.as_str() == text)
    }
}

/// Every state, in lifecycle order.
pub const STATUSES: &[Status] = &[
    Status::Proposed,
    Status::Approved,
    Status::Active,
    Status::Suspended,
    Status::Closed,
    Status::Finalized,
    Status::Rejected,
    Status::Cancelled,
];

/// A stream's version (events so far) and the global position of its last event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamState {
    /// Number of events in the stream.
    pub version: u64,
    /// Global log position of its last event.
    pub position: u64,
}

/// A fund's own figures. Commitment and grant movements are folded in from events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundState {
    /// The fund id.
    pub fund: String,
    /// Its name.
    pub name: String,
    /// Its base currency.
    pub currency: Currency,
    /// Sum of contributions.
    pub received: Amount,
    /// Sum of its grants' commitments.
    pub committed: Amount,
    /// Sum of its grants' disbursements.
    pub disbursed: Amount,
    /// Sum of its grants' refunds.
    pub refunded: Amount,
    /// How many grants were proposed under it (any state).
    pub grants: u64,
}

/// One agency currently on a grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgencyState {
    /// The agency id.
    pub agency: String,
    /// Whether it is the lead agency.
    pub lead: bool,
    /// Its allocation.
    pub allocation: Amount,
    /// Sum of disbursements to it.
    pub disbursed: Amount,
    /// Sum of its reported expenditures.
    pub expended: Amount,
    /// Sum of its refunds.
    pub refunded: Amount,
}

impl AgencyState {
    /// What it holds: disbursed - expended - refunded.
    pub fn balance(&self) -> Amount {
        self.disbursed - self.expended - self.refunded
    }

    /// What it received net of refunds: disbursed - refunded.
    pub fn net_disbursed(&self) -> Amount {
        self.disbursed - self.refunded
    }
}

/// A grant's state, from its proposal on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantState {
    /// The grant id.
    pub grant: String,
    /// Its fund.
    pub fund: String,
    /// Its title.
    pub title: String,
    /// The fund's currency.
    pub currency: Currency,
    /// Its state.
    pub status: Status,
    /// The state before the current suspension.
    pub suspended_from: Option<Status>,
    /// Who submitted the proposal (for the four-eyes rule).
    pub submitted_by: String,
    /// The proposal's figure.
    pub requested: Amount,
    /// The current approved amount (0 before approval).
    pub amount: Amount,
    /// Recipient country.
    pub country: Option<Country>,
    /// Regions.
    pub regions: Vec<String>,
    /// Planned start.
    pub starts_on: Option<Date>,
    /// Planned end (revisable).
    pub ends_on: Option<Date>,
    /// Activities.
    pub activities: Vec<String>,
    /// Approval decision date.
    pub decided_on: Option<Date>,
    /// Operational closure date.
    pub closed_on: Option<Date>,
    /// Current agencies, in assignment order.
    pub agencies: Vec<AgencyState>,
    /// Total disbursed, withdrawn agencies included.
    pub disbursed: Amount,
    /// Total expended, withdrawn agencies included.
    pub expended: Amount,
    /// Total refunded, withdrawn agencies included.
    pub refunded: Amount,
}

impl GrantState {
    /// Sum of current allocations.
    pub fn allocated(&self) -> Amount {
        self.agencies.iter().map(|agency| agency.allocation).sum()
    }

    /// The current agency with this id.
    pub fn agency(&self, agency: &str) -> Option<&AgencyState> {
        self.agencies.iter().find(|state| state.agency == agency)
    }

    /// The lead agency, if any.
    pub fn lead(&self) -> Option<&AgencyState> {
        self.agencies.iter().find(|state| state.lead)
    }

    /// Disbursed net of refunds, over all agencies past and present.
    pub fn net_disbursed(&self) -> Amount {
        self.disbursed - self.refunded
    }

    /// What the grant holds of its fund (docs/domain.md): its amount while approved, active,
    /// suspended or closed; disbursed - refunded once cancelled or finalized; else 0.
    pub fn commitment(&self) -> Amount {
        match self.status {
            Status::Approved | Status::Active | Status::Suspended | Status::Closed => self.amount,
            Status::Cancelled | Status::Finalized => self.net_disbursed(),
            Status::Proposed | Status::Rejected => Amount::ZERO,
        }
    }
}

/// All funds and grants. The engine snapshots it (serde).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct World {
    pub(crate) funds: HashMap<String, FundState>,
    pub(crate) grants: HashMap<String, GrantState>,
    pub(crate) fund_order: Vec<String>,
    pub(crate) grant_order: Vec<String>,
    /// `fund-<id>` streams by fund id (kept apart so that folding an event needs no
    /// allocation to find its stream).
    pub(crate) fund_streams: HashMap<String, StreamState>,
    /// `grant-<id>` streams by grant id.
    pub(crate) grant_streams: HashMap<String, StreamState>,
}

impl World {
    /// The stream's version: how many events it has (0 for an unknown stream).
    pub fn stream_version(&self, stream: &str) -> u64 {
        self.stream_state(stream).map_or(0, |state| state.version)
    }

    /// The global position of the stream's last event (0 for an unknown stream).
    pub fn stream_position(&self, stream: &str) -> u64 {
        self.stream_state(stream).map_or(0, |state| state.position)
    }

    /// Grant ids in order of submission.
    pub fn grant_ids(&self) -> Vec<String> {
        self.grant_order.clone()
    }

    /// Fund ids in order of registration.
    pub fn fund_ids(&self) -> Vec<String> {
        self.fund_order.clone()
    }

    /// The fund a grant belongs to.
    pub fn grant_fund(&self, grant: &str) -> Option<String> {
        self.grants.get(grant).map(|state| state.fund.clone())
    }

    /// A grant's state.
    pub fn grant(&self, grant: &str) -> Option<&GrantState> {
        self.grants.get(grant)
    }

    /// A fund's state.
    pub fn fund(&self, fund: &str) -> Option<&FundState> {
        self.funds.get(fund)
    }

    /// A fund's available money: received - committed.
    pub fn fund_available(&self, fund: &str) -> Option<Amount> {
        self.funds
            .get(fund)
            .map(|state| state.received - state.committed)
    }

    /// The grants of one fund, in order of submission.
    pub fn fund_grant_ids(&self, fund: &str) -> Vec<String> {
        self.grant_order
            .iter()
            .filter(|grant| {
                self.grants
                    .get(*grant)
                    .is_some_and(|state| state.fund == fund)
            })
            .cloned()
            .collect()
    }

    pub(crate) fn grant_stream_state(&self, grant: &str) -> StreamState {
        self.grant_streams.get(grant).copied().unwrap_or_default()
    }

    pub(crate) fn fund_stream_state(&self, fund: &str) -> StreamState {
        self.fund_streams.get(fund).copied().unwrap_or_default()
    }

    /// A stream by its name (`fund-<id>` or `grant-<id>`).
    fn stream_state(&self, stream: &str) -> Option<&StreamState> {
        if let Some(fund) = stream.strip_prefix("fund-") {
            return self.fund_streams.get(fund);
        }
        self.grant_streams.get(stream.strip_prefix("grant-")?)
    }
}
