//! Views: the figures of docs/domain.md (`grant show --json`, `fund show --json`), with amounts
//! as decimal strings in the currency's decimals.

use crate::money::Amount;
use crate::terms::{FundTerms, CATEGORIES};
use crate::world::{AgencyState, DocumentState, GrantState, ReportState, World};
use serde::{Deserialize, Serialize};

/// The JSON Schemas (draft 2020-12) of the figures as they are written: [`GrantView`],
/// [`FundView`] and [`ReportRow`] with every type they use, by name, each referring to the
/// others as `#/$defs/<name>` (the HTTP API's OpenAPI description holds them).
pub fn view_schemas() -> serde_json::Map<String, serde_json::Value> {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.contract = schemars::generate::Contract::Serialize;
    let mut generator = settings.into_generator();
    generator.subschema_for::<GrantView>();
    generator.subschema_for::<FundView>();
    generator.subschema_for::<ReportRow>();
    generator.take_definitions(true)
}

/// A grant's figures, fields in the documented order (docs/domain.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
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
    /// The approval's amount as reported in another currency (information only), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_equivalent: Option<EquivalentView>,
    /// Its reports, by due date then id.
    #[serde(default)]
    pub reports: Vec<ReportView>,
    /// Documents filed on it, in attachment order.
    #[serde(default)]
    pub documents: Vec<DocumentView>,
    /// Its sectors: DAC 5-digit codes with their percentages.
    #[serde(default)]
    pub sectors: Vec<SectorView>,
    /// The grant stream's version.
    pub version: u64,
    /// Position of the grant stream's last event.
    pub position: u64,
}

/// One agency's figures on a grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
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
    /// Its budget by category, in the categories' order; only when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Vec<BudgetLineView>>,
}

/// One sector of a grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct SectorView {
    /// The DAC 5-digit code.
    pub code: String,
    /// Its share, with 2 decimals, e.g. `"100.00"`.
    pub percentage: String,
}

/// One category of an agency's budget.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct BudgetLineView {
    /// The category, e.g. `"staff"`.
    pub category: String,
    /// Its budget.
    pub budget: String,
    /// What was spent in it.
    pub expended: String,
}

/// An amount in another currency, information only.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct EquivalentView {
    /// The amount with its currency's decimals.
    pub amount: String,
    /// Its currency.
    pub currency: String,
}

/// One report of a grant.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct ReportView {
    /// Report id.
    pub report: String,
    /// `progress`, `financial` or `final`.
    pub kind: String,
    /// The end of the period it covers.
    pub period_end: String,
    /// When it is due.
    pub due_on: String,
    /// `scheduled`, `submitted`, `accepted` or `returned`.
    pub status: String,
    /// The latest submission's date.
    pub submitted_on: Option<String>,
    /// The acceptance date.
    pub accepted_on: Option<String>,
}

/// One document filed on a grant or fund.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct DocumentView {
    /// Document id.
    pub document: String,
    /// Title.
    pub title: String,
    /// IATI DocumentCategory code.
    pub category: String,
    /// SHA-256 of the file.
    pub sha256: String,
    /// Where it can be read.
    pub url: Option<String>,
    /// When it was issued.
    pub issued_on: Option<String>,
}

/// A fund's terms.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct TermsView {
    /// The fee on each contribution, e.g. `"1.00"`.
    pub admin_fee_percent: String,
    /// The cap on indirect support costs, e.g. `"7.00"`.
    pub indirect_max_percent: String,
    /// The tranche threshold, e.g. `"70.00"`.
    pub tranche_threshold_percent: String,
    /// The hold on overdue reports.
    pub hold_on_overdue_reports: bool,
}

/// One pledge of a fund.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct PledgeView {
    /// Pledge id.
    pub pledge: String,
    /// Donor id.
    pub donor: String,
    /// The amount pledged.
    pub amount: String,
    /// Paid by contributions that named it.
    pub paid: String,
    /// amount - paid.
    pub outstanding: String,
    /// When it was signed.
    pub signed_on: String,
    /// When the money is due.
    pub due_on: Option<String>,
}

/// A fund's figures, fields in the documented order (docs/domain.md).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
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
    /// received + income - fees - committed.
    pub available: String,
    /// Sum of its grants' disbursements.
    pub disbursed: String,
    /// Sum of its grants' refunds.
    pub refunded: String,
    /// received + income - fees - disbursed + refunded.
    pub cash: String,
    /// Sum of pledges.
    #[serde(default)]
    pub pledged: String,
    /// What pledges still await.
    #[serde(default)]
    pub pledges_outstanding: String,
    /// Sum of the administrative agent's fees.
    #[serde(default)]
    pub fees: String,
    /// Sum of income.
    #[serde(default)]
    pub income: String,
    /// How many grants (any state).
    pub grants: u64,
    /// The terms in force.
    #[serde(default = "default_terms_view")]
    pub terms: TermsView,
    /// Its pledges, in order of recording.
    #[serde(default)]
    pub pledges: Vec<PledgeView>,
    /// Documents filed on it, in attachment order.
    #[serde(default)]
    pub documents: Vec<DocumentView>,
    /// Its publishing organisation identifier (IATI), when set.
    #[serde(default)]
    pub iati_org_ref: Option<String>,
    /// The fund stream's version.
    pub version: u64,
    /// Position of the fund stream's last event.
    pub position: u64,
}

/// What a human renderer may want beyond the figures.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
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
            reported_equivalent: state.reported_equivalent.map(|reported| EquivalentView {
                amount: reported.amount.to_string(),
                currency: reported.currency.code().to_string(),
            }),
            reports: report_views(&state.reports),
            documents: state.documents.iter().map(document_view).collect(),
            sectors: state
                .sectors
                .iter()
                .map(|sector| SectorView {
                    code: sector.code.clone(),
                    percentage: sector.percentage.to_string(),
                })
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
            available: money(state.available()),
            disbursed: money(state.disbursed),
            refunded: money(state.refunded),
            cash: money(state.cash()),
            pledged: money(state.pledged()),
            pledges_outstanding: money(state.pledges_outstanding()),
            fees: money(state.fees),
            income: money(state.income),
            grants: state.grants,
            terms: terms_view(&state.terms),
            pledges: state
                .pledges
                .iter()
                .map(|pledge| PledgeView {
                    pledge: pledge.pledge.clone(),
                    donor: pledge.donor.clone(),
                    amount: money(pledge.amount),
                    paid: money(pledge.paid),
                    outstanding: money(pledge.outstanding()),
                    signed_on: pledge.signed_on.to_string(),
                    due_on: pledge.due_on.map(|date| date.to_string()),
                })
                .collect(),
            documents: state.documents.iter().map(document_view).collect(),
            iati_org_ref: state.iati_org_ref.clone(),
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
        budget: agency.budget.map(|budget| {
            CATEGORIES
                .iter()
                .map(|category| BudgetLineView {
                    category: category.as_str().to_string(),
                    budget: budget.get(*category).format(decimals),
                    expended: agency.category_expended[category.index()].format(decimals),
                })
                .collect()
        }),
    }
}

/// One row of `report list` and `GET /v1/reports`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, schemars::JsonSchema)]
pub struct ReportRow {
    /// Grant id.
    pub grant: String,
    /// Report id.
    pub report: String,
    /// `progress`, `financial` or `final`.
    pub kind: String,
    /// The end of the period it covers.
    pub period_end: String,
    /// When it is due.
    pub due_on: String,
    /// Its current status.
    pub status: String,
}

impl World {
    /// Every report of the grants of `fund` (or of all funds), of `grant` (or of all grants),
    /// with `overdue_on` only those overdue on that date; ordered by due date, grant, id.
    pub fn report_rows(
        &self,
        fund: Option<&str>,
        grant: Option<&str>,
        overdue_on: Option<crate::values::Date>,
    ) -> Vec<ReportRow> {
        let mut rows: Vec<(&GrantState, &ReportState)> = self
            .grant_order
            .iter()
            .filter_map(|id| self.grants.get(id))
            .filter(|state| fund.is_none_or(|fund| state.fund == fund))
            .filter(|state| grant.is_none_or(|grant| state.grant == grant))
            .flat_map(|state| state.reports.iter().map(move |report| (state, report)))
            .filter(|(_, report)| overdue_on.is_none_or(|date| report.overdue_on(date)))
            .collect();
        rows.sort_by(|(ga, a), (gb, b)| {
            (a.due_on, &ga.grant, &a.report).cmp(&(b.due_on, &gb.grant, &b.report))
        });
        rows.into_iter()
            .map(|(state, report)| ReportRow {
                grant: state.grant.clone(),
                report: report.report.clone(),
                kind: report.kind.as_str().to_string(),
                period_end: report.period_end.to_string(),
                due_on: report.due_on.to_string(),
                status: report.status().as_str().to_string(),
            })
            .collect()
    }
}

/// A grant's reports, ordered by due date then id.
pub fn report_views(reports: &[ReportState]) -> Vec<ReportView> {
    let mut ordered: Vec<&ReportState> = reports.iter().collect();
    ordered.sort_by(|a, b| (a.due_on, &a.report).cmp(&(b.due_on, &b.report)));
    ordered.into_iter().map(report_view).collect()
}

/// One report's figures.
pub fn report_view(report: &ReportState) -> ReportView {
    ReportView {
        report: report.report.clone(),
        kind: report.kind.as_str().to_string(),
        period_end: report.period_end.to_string(),
        due_on: report.due_on.to_string(),
        status: report.status().as_str().to_string(),
        submitted_on: report.submitted_on.map(|date| date.to_string()),
        accepted_on: report.accepted_on.map(|date| date.to_string()),
    }
}

fn document_view(document: &DocumentState) -> DocumentView {
    DocumentView {
        document: document.document.clone(),
        title: document.title.clone(),
        category: document.category.clone(),
        sha256: document.sha256.clone(),
        url: document.url.clone(),
        issued_on: document.issued_on.map(|date| date.to_string()),
    }
}

fn terms_view(terms: &FundTerms) -> TermsView {
    TermsView {
        admin_fee_percent: terms.admin_fee_percent.to_string(),
        indirect_max_percent: terms.indirect_max_percent.to_string(),
        tranche_threshold_percent: terms.tranche_threshold_percent.to_string(),
        hold_on_overdue_reports: terms.hold_on_overdue_reports,
    }
}

fn default_terms_view() -> TermsView {
    terms_view(&FundTerms::default())
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
