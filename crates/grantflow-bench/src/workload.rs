//! A reproducible workload: command JSON values the real engine accepts, in a realistic mix.
//!
//! The workload is made of independent *lanes*: each lane owns one fund and that fund's grants
//! (register the fund, contributions, proposals, approvals by another actor, agency
//! assignments, then many disbursements, expenditures and refunds). Lanes never touch each
//! other's streams, so any interleaving that keeps each lane's order is valid: with `k`
//! concurrent submitters, submitter `i` sends the commands of lanes `l % k == i` in order.
//! The global order is a round-robin over the lanes. Each lane simulates the domain rules it
//! relies on (available money, allocations, balances), so every command is meant to be
//! accepted; the harness checks that at least 99% are.

use serde_json::{json, Value};

/// A tiny, fast, reproducible PRNG (SplitMix64): no dependency, same stream on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
}

/// One generated command.
#[derive(Debug, Clone)]
pub struct GenCommand {
    /// Its lane (fund).
    pub lane: u32,
    /// The command JSON (docs/commands.md), actor and command id included.
    pub body: Value,
    /// How many events it appends when accepted.
    pub events: u32,
}

/// A generated workload, in global (round-robin over lanes) order.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The commands.
    pub commands: Vec<GenCommand>,
    /// How many lanes.
    pub lanes: u32,
    /// Events the commands append when all are accepted.
    pub events: u64,
}

/// Who does what (approvals are by another actor than the submitter: four eyes).
pub const ACTOR_SECRETARIAT: &str = "secretariat.a.tanaka";
/// The approver.
pub const ACTOR_APPROVER: &str = "approver.m.ito";
/// Finance: funds, contributions and money movements.
pub const ACTOR_FINANCE: &str = "finance.k.sato";

const AGENCIES: &[&str] = &[
    "IOM", "UNDP", "UNFPA", "UNHCR", "UNODC", "ILO", "UNICEF", "UNWOMEN", "WFP", "WHO", "FAO",
    "UNESCO",
];
const DONORS: &[&str] = &["JP-GOV", "TH-GOV", "SI-GOV", "MX-GOV", "GR-GOV", "KR-GOV"];
const COUNTRIES: &[&str] = &["MX", "GT", "HN", "KE", "UG", "NP", "BD", "PH", "SN", "CO"];
const REGIONS: &[&str] = &[
    "Chiapas", "Oaxaca", "Tabasco", "Peten", "Izabal", "Karamoja", "Turkana", "Sylhet", "Mindanao",
];
const ACTIVITIES: &[&str] = &[
    "Strengthen federal and state institutions that assist migrants in transit",
    "Strengthen civil-society organisations and migrant shelters",
    "Promote peaceful co-existence with host communities",
    "Community early-warning and disaster-risk reduction committees",
];

/// A generator of one lane's commands, simulating what the rules need.
struct Lane {
    id: u32,
    rng: SplitMix64,
    seq: u64,
    prefix: String,
    fund: String,
    registered: bool,
    contributions: u32,
    /// Fund received minus committed, in cents.
    available: i64,
    grants: Vec<GrantSim>,
    next_grant: u32,
    day: i64,
    /// The chance (percent) that a dated command moves the lane's day on.
    day_percent: u64,
}

struct GrantSim {
    id: String,
    requested: i64,
    stage: Stage,
    agencies: Vec<AgencySim>,
    to_assign: usize,
    money_ops: u32,
    money_ops_max: u32,
}

#[derive(PartialEq, Eq)]
enum Stage {
    Proposed,
    Approved,
    Assigning,
    Operating,
}

struct AgencySim {
    name: &'static str,
    allocation: i64,
    disbursed: i64,
    expended: i64,
    refunded: i64,
}

impl AgencySim {
    fn net(&self) -> i64 {
        self.disbursed - self.refunded
    }
    fn balance(&self) -> i64 {
        self.disbursed - self.expended - self.refunded
    }
}

/// Cents as a decimal string with two decimals (USD).
pub fn cents(amount: i64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (proleptic Gregorian).
pub fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// 2013-01-01 in days since the epoch.
const START_DAY: i64 = 15_706;
/// The days a lane may use: from [`START_DAY`] to 2026-01-01 (later dates would be in the
/// future of a run, which the rules refuse).
const DAYS: u64 = 4_748;
/// The chance (percent) that a dated command moves its lane's day on, for a workload whose
/// lanes stay within [`DAYS`] at that pace (a lane's commands are fewer than its events).
const DAY_PERCENT: u64 = 30;

impl Lane {
    fn new(seed: u64, id: u32) -> Lane {
        let mut mix = SplitMix64::new(seed ^ (u64::from(id) << 32) ^ 0x5EED);
        mix.next_u64();
        Lane {
            id,
            rng: mix,
            seq: 0,
            prefix: format!("s{seed}-l{id}"),
            fund: format!("UNTFHS-{id:04}"),
            registered: false,
            contributions: 0,
            available: 0,
            grants: Vec::new(),
            next_grant: 0,
            day: START_DAY,
            day_percent: DAY_PERCENT,
        }
    }

    fn command(&mut self, mut body: Value, actor: &str, events: u32) -> GenCommand {
        self.seq += 1;
        body["actor"] = Value::String(actor.to_string());
        body["command_id"] = Value::String(format!("{}-{}", self.prefix, self.seq));
        GenCommand {
            lane: self.id,
            body,
            events,
        }
    }

    fn today(&mut self) -> String {
        if self.rng.percent(self.day_percent) {
            self.day += 1;
        }
        date(self.day)
    }

    fn contribution(&mut self) -> GenCommand {
        self.contributions += 1;
        let amount = self.rng.range(40_000_000, 120_000_000) as i64 * 100;
        self.available += amount;
        let donor = DONORS[self.rng.below(DONORS.len())];
        let received_on = self.today();
        let mut body = json!({
            "command": "record-contribution",
            "fund": self.fund,
            "donor": donor,
            "amount": cents(amount),
            "received_on": received_on,
        });
        if donor == "JP-GOV" {
            body["original_amount"] = Value::String(format!("{}", amount / 100 * 80));
            body["original_currency"] = Value::String("JPY".into());
        }
        self.command(body, ACTOR_FINANCE, 1)
    }

    fn proposal(&mut self) -> GenCommand {
        self.next_grant += 1;
        let id = format!("G{:04}-{:05}", self.id, self.next_grant);
        let requested =
            self.rng.range(800_000, 5_000_000) as i64 * 100 + self.rng.range(0, 99) as i64;
        let country = COUNTRIES[self.rng.below(COUNTRIES.len())];
        let first = self.rng.below(REGIONS.len());
        let regions = vec![REGIONS[first], REGIONS[(first + 1) % REGIONS.len()]];
        let activities: Vec<&str> = (0..self.rng.range(1, 3))
            .map(|i| ACTIVITIES[(first + i as usize) % ACTIVITIES.len()])
            .collect();
        let starts = self.day + 60;
        let body = json!({
            "command": "submit-proposal",
            "fund": self.fund,
            "grant": id,
            "title": format!("Protection and empowerment of vulnerable communities, phase {}", self.next_grant),
            "amount": cents(requested),
            "country": country,
            "regions": regions,
            "starts_on": date(starts),
            "ends_on": date(starts + 365 * 3),
            "activities": activities,
        });
        let agencies = self.rng.range(2, 5) as usize;
        let money_ops_max = self.rng.range(40, 120) as u32;
        self.grants.push(GrantSim {
            id,
            requested,
            stage: Stage::Proposed,
            agencies: Vec::new(),
            to_assign: agencies,
            money_ops: 0,
            money_ops_max,
        });
        self.command(body, ACTOR_SECRETARIAT, 1)
    }

    fn next(&mut self) -> GenCommand {
        if !self.registered {
            self.registered = true;
            let body = json!({
                "command": "register-fund",
                "fund": self.fund,
                "name": format!("United Nations Trust Fund for Human Security, window {}", self.id),
                "currency": "USD",
            });
            return self.command(body, ACTOR_FINANCE, 1);
        }
        if self.contributions < 2 {
            return self.contribution();
        }
        // Keep about three grants in flight; retire finished ones.
        self.grants.retain(|g| g.money_ops < g.money_ops_max);
        if self.grants.len() < 3 {
            let needed = 5_000_000 * 100;
            if self.available < needed {
                return self.contribution();
            }
            return self.proposal();
        }
        let index = self.rng.below(self.grants.len());
        self.grant_step(index)
    }

    fn grant_step(&mut self, index: usize) -> GenCommand {
        let stage = &self.grants[index].stage;
        match stage {
            Stage::Proposed => {
                let requested = self.grants[index].requested;
                if self.available < requested {
                    return self.contribution();
                }
                self.available -= requested;
                self.grants[index].stage = Stage::Approved;
                let decided_on = self.today();
                let mut body = json!({
                    "command": "approve-grant",
                    "grant": self.grants[index].id,
                    "decided_on": decided_on,
                });
                if self.rng.percent(30) {
                    body["reported_equivalent"] = json!({
                        "amount": format!("{}", requested / 100 * 81),
                        "currency": "JPY",
                    });
                }
                // grant.approved + fund.grant_committed
                self.command(body, ACTOR_APPROVER, 2)
            }
            Stage::Approved | Stage::Assigning => self.assign(index),
            Stage::Operating => self.money(index),
        }
    }

    fn assign(&mut self, index: usize) -> GenCommand {
        let grant = &mut self.grants[index];
        grant.stage = Stage::Assigning;
        let n = grant.to_assign;
        let k = grant.agencies.len();
        // Allocate 95% of the amount, split evenly.
        let allocation = grant.requested * 95 / 100 / n as i64;
        let lead = k == 0;
        let start = (grant.requested as usize) % AGENCIES.len();
        let name = AGENCIES[(start + k) % AGENCIES.len()];
        grant.agencies.push(AgencySim {
            name,
            allocation,
            disbursed: 0,
            expended: 0,
            refunded: 0,
        });
        if grant.agencies.len() == n {
            grant.stage = Stage::Operating;
        }
        let mut body = json!({
            "command": "assign-agency",
            "grant": grant.id,
            "agency": name,
            "allocation": cents(allocation),
        });
        if lead {
            body["lead"] = Value::Bool(true);
        }
        self.command(body, ACTOR_SECRETARIAT, 1)
    }

    fn money(&mut self, index: usize) -> GenCommand {
        let roll = self.rng.range(0, 99);
        let agency_index = self.rng.below(self.grants[index].agencies.len());
        let day = self.today();
        let reference = format!("TR-{}-{:06}", &day[..4], self.seq);
        let g = &mut self.grants[index];
        g.money_ops += 1;
        let grant_id = g.id.clone();
        let a = &mut g.agencies[agency_index];
        let room = a.allocation - a.net();
        let spendable = a.net() - a.expended;
        let (command, amount) = if roll < 62 && room >= 100 {
            let tranche = (a.allocation / 40).max(100);
            let amount = (tranche / 2 + (self.rng.next_u64() % tranche as u64) as i64).min(room);
            a.disbursed += amount;
            ("record-disbursement", amount)
        } else if roll < 92 && spendable >= 100 {
            let amount = (spendable * self.rng.range(20, 70) as i64 / 100).max(1);
            a.expended += amount;
            ("record-expenditure", amount)
        } else if a.balance() >= 100 {
            let amount = (a.balance() * self.rng.range(1, 10) as i64 / 100).max(1);
            a.refunded += amount;
            ("record-refund", amount)
        } else if room >= 100 {
            let amount = (a.allocation / 40).max(100).min(room);
            a.disbursed += amount;
            ("record-disbursement", amount)
        } else {
            // Nothing left to move for this agency: finish the grant with a disbursement-free
            // step (an expenditure of what it still holds, else retire the grant).
            g.money_ops = g.money_ops_max;
            return self.next();
        };
        let name = a.name;
        let mut body = match command {
            "record-disbursement" => json!({
                "command": command, "grant": grant_id, "agency": name,
                "amount": cents(amount), "paid_on": day, "reference": reference,
            }),
            "record-expenditure" => json!({
                "command": command, "grant": grant_id, "agency": name,
                "amount": cents(amount), "period_end": day,
            }),
            _ => json!({
                "command": command, "grant": grant_id, "agency": name,
                "amount": cents(amount), "received_on": day, "reference": reference,
            }),
        };
        if self.rng.percent(10) {
            body["currency"] = Value::String("USD".into());
        }
        self.command(body, ACTOR_FINANCE, 1)
    }
}

/// An endless generator of the round-robin workload (for logs too large to hold in memory).
pub struct Generator {
    lanes: Vec<Lane>,
    next_lane: usize,
}

impl Generator {
    /// A generator over `lanes` lanes (at least one).
    pub fn new(seed: u64, lanes: u32) -> Generator {
        Generator {
            lanes: (0..lanes.max(1)).map(|id| Lane::new(seed, id)).collect(),
            next_lane: 0,
        }
    }

    /// A generator for a workload of about `events` events: as [`Generator::new`], with the
    /// lanes' days moving on more slowly when so many events at the usual pace would reach
    /// dates after 2026 (from about 4,000,000 events over 256 lanes), so that every command
    /// stays acceptable. Below that the workload is exactly [`Generator::new`]'s.
    pub fn for_events(seed: u64, lanes: u32, events: u64) -> Generator {
        let mut generator = Generator::new(seed, lanes);
        let per_lane = events / u64::from(lanes.max(1));
        let percent = (DAYS * 100 / per_lane.max(1)).clamp(1, DAY_PERCENT);
        for lane in &mut generator.lanes {
            lane.day_percent = percent;
        }
        generator
    }

    /// The next command in global order.
    pub fn next_command(&mut self) -> GenCommand {
        let index = self.next_lane;
        self.next_lane = (self.next_lane + 1) % self.lanes.len();
        self.lanes[index].next()
    }
}

/// Generates a workload of `lanes` lanes, round-robin, until it holds at least
/// `min_commands` commands and at least `min_events` events.
pub fn generate(seed: u64, lanes: u32, min_commands: usize, min_events: u64) -> Workload {
    let lanes = lanes.max(1);
    let mut generator = Generator::new(seed, lanes);
    let mut commands = Vec::with_capacity(min_commands);
    let mut events = 0u64;
    while commands.len() < min_commands || events < min_events {
        let command = generator.next_command();
        events += u64::from(command.events);
        commands.push(command);
    }
    Workload {
        commands,
        lanes,
        events,
    }
}

/// How many of each command the workload holds, by name (for the report).
pub fn mix(workload: &Workload) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for command in &workload.commands {
        let name = command.body["command"].as_str().unwrap_or("?").to_string();
        *counts.entry(name).or_default() += 1;
    }
    let mut out: Vec<(String, usize)> = counts.into_iter().collect();
    out.sort_by_key(|entry| std::cmp::Reverse(entry.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_calendar_dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(START_DAY), "2013-01-01");
        assert_eq!(date(START_DAY + 59), "2013-03-01");
    }

    #[test]
    fn same_seed_same_workload() {
        let a = generate(7, 8, 500, 0);
        let b = generate(7, 8, 500, 0);
        assert_eq!(a.commands.len(), b.commands.len());
        for (x, y) in a.commands.iter().zip(&b.commands) {
            assert_eq!(x.body, y.body);
        }
    }

    /// A lane of 100,000 events keeps its dates before 2026 (at the usual pace it would
    /// reach the 2030s), and a workload of a million events over 256 lanes is unchanged.
    #[test]
    fn a_long_lane_slows_its_days_and_a_short_one_keeps_its_pace() {
        let mut long = Generator::for_events(3, 1, 100_000);
        let mut events = 0u64;
        while events < 100_000 {
            events += u64::from(long.next_command().events);
        }
        assert!(
            long.lanes[0].day < START_DAY + DAYS as i64,
            "{}",
            date(long.lanes[0].day)
        );
        assert!(
            long.lanes[0].day > START_DAY + DAYS as i64 / 2,
            "{}",
            date(long.lanes[0].day)
        );

        let mut usual = Generator::new(3, 256);
        let mut sized = Generator::for_events(3, 256, 1_000_000);
        for _ in 0..2_000 {
            assert_eq!(usual.next_command().body, sized.next_command().body);
        }
    }

    #[test]
    fn every_command_parses() {
        let w = generate(1, 4, 2_000, 0);
        for command in &w.commands {
            grantflow_domain::parse_command(&command.body)
                .unwrap_or_else(|e| panic!("{}: {}", command.body, e.message));
        }
    }
}
