//! The world: every fund and grant as the events left them, plus each stream's version and
//! last position. `evolve` folds one event in; the views read figures out.

use crate::event::ReportedAmount;
use crate::money::{Amount, Currency};
use crate::terms::{Budget, FundTerms, ReportKind, ReportStatus, SectorShare};
use crate::values::{Country, Date};
use foldhash::HashMap;
use serde::{Deserialize, Serialize};

/// A grant's lifecycle state (docs/domain.md, "Lifecycle").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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
    /// The terms in force.
    pub terms: FundTerms,
    /// Donors' pledges, in order of recording.
    pub pledges: Vec<PledgeState>,
    /// Sum of the administrative agent's fees.
    pub fees: Amount,
    /// Sum of income (interest, investment, other).
    pub income: Amount,
    /// Documents filed on the fund, in order of attachment.
    pub documents: Vec<DocumentState>,
    /// The fund's publishing organisation identifier (IATI).
    pub iati_org_ref: Option<String>,
}

impl FundState {
    /// received + income - fees - committed.
    pub fn available(&self) -> Amount {
        self.received + self.income - self.fees - self.committed
    }

    /// received + income - fees - disbursed + refunded.
    pub fn cash(&self) -> Amount {
        self.received + self.income - self.fees - self.disbursed + self.refunded
    }

    /// Sum of pledges.
    pub fn pledged(&self) -> Amount {
        self.pledges.iter().map(|pledge| pledge.amount).sum()
    }

    /// Sum of what pledges still await.
    pub fn pledges_outstanding(&self) -> Amount {
        self.pledges.iter().map(PledgeState::outstanding).sum()
    }

    /// The pledge with this id.
    pub fn pledge(&self, pledge: &str) -> Option<&PledgeState> {
        self.pledges.iter().find(|state| state.pledge == pledge)
    }
}

/// A donor's signed pledge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PledgeState {
    /// The pledge id.
    pub pledge: String,
    /// The donor.
    pub donor: String,
    /// The amount pledged.
    pub amount: Amount,
    /// Sum of the contributions that named it.
    pub paid: Amount,
    /// When it was signed.
    pub signed_on: Date,
    /// When the money is due.
    pub due_on: Option<Date>,
}

impl PledgeState {
    /// amount - paid.
    pub fn outstanding(&self) -> Amount {
        self.amount - self.paid
    }
}

/// A document filed on a grant or a fund.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentState {
    /// The document id.
    pub document: String,
    /// The title.
    pub title: String,
    /// The IATI DocumentCategory code.
    pub category: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Where it can be read.
    pub url: Option<String>,
    /// When it was issued.
    pub issued_on: Option<Date>,
}

/// A report of a grant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportState {
    /// The report id.
    pub report: String,
    /// Its kind.
    pub kind: ReportKind,
    /// The end of the period it covers.
    pub period_end: Date,
    /// When it is due.
    pub due_on: Date,
    /// The latest submission's date.
    pub submitted_on: Option<Date>,
    /// The acceptance date.
    pub accepted_on: Option<Date>,
    /// Who submitted it last.
    pub submitted_by: Option<String>,
    /// Its dated status changes, in log order.
    pub history: Vec<(Date, ReportStatus)>,
}

impl ReportState {
    /// Its current status: that of its latest dated event, in log order (scheduled before
    /// any).
    pub fn status(&self) -> ReportStatus {
        self.history
            .last()
            .map_or(ReportStatus::Scheduled, |(_, status)| *status)
    }

    /// Its status on `date`: its dated events up to and including `date`, in log order.
    pub fn status_on(&self, date: Date) -> ReportStatus {
        self.history
            .iter()
            .filter(|(on, _)| *on <= date)
            .map(|(_, status)| *status)
            .next_back()
            .unwrap_or(ReportStatus::Scheduled)
    }

    /// Overdue on `date`: `date` is after `due_on` and its status then is scheduled or
    /// returned.
    pub fn overdue_on(&self, date: Date) -> bool {
        date > self.due_on
            && matches!(
                self.status_on(date),
                ReportStatus::Scheduled | ReportStatus::Returned
            )
    }
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
    /// Its budget by category, once one is set.
    pub budget: Option<Budget>,
    /// Its expenditures by category (in the order of the categories).
    pub category_expended: [Amount; 8],
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
    /// The approval's amount as reported in another currency (information only).
    pub reported_equivalent: Option<ReportedAmount>,
    /// Its reports, in order of scheduling.
    pub reports: Vec<ReportState>,
    /// Documents filed on it, in order of attachment.
    pub documents: Vec<DocumentState>,
    /// Its sectors (empty when it names none).
    pub sectors: Vec<SectorShare>,
}

impl GrantState {
    /// The report with this id.
    pub fn report(&self, report: &str) -> Option<&ReportState> {
        self.reports.iter().find(|state| state.report == report)
    }

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

/// What a fund's figures are made of: its state and its stream's. The engine's fund
/// checkpoints keep it, and a fold that keeps funds only starts from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FundPart {
    /// The fund's state.
    pub state: FundState,
    /// Its stream's version and last position.
    pub stream: StreamState,
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

    /// A fund's available money: received + income - fees - committed.
    pub fn fund_available(&self, fund: &str) -> Option<Amount> {
        self.funds.get(fund).map(FundState::available)
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

    /// A fund's part of the world (`None` for an unknown fund).
    pub fn fund_part(&self, fund: &str) -> Option<FundPart> {
        Some(FundPart {
            state: self.funds.get(fund)?.clone(),
            stream: self.fund_stream_state(fund),
        })
    }

    /// Puts a fund's part into the world, as it was where a fold that keeps funds only starts.
    pub fn restore_fund(&mut self, part: FundPart) {
        let fund = part.state.fund.clone();
        if !self.funds.contains_key(&fund) {
            self.fund_order.push(fund.clone());
        }
        self.fund_streams.insert(fund.clone(), part.stream);
        self.funds.insert(fund, part.state);
    }

    /// Folds an event of a grant's stream into the figures of `fund`, the grant's fund, alone
    /// ([`crate::evolve::evolve_fund_of_grant`]); the grant's own state is not kept.
    pub fn evolve_fund_of_grant(&mut self, fund: &str, event: &crate::Event) {
        if let Some(state) = self.funds.get_mut(fund) {
            crate::evolve::evolve_fund_of_grant(state, event);
        }
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
