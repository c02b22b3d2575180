//! Exact shares: percentages that add up to exactly 100.00, and amounts split over periods by
//! days so that the parts add up to the whole. Integers only (money is never a float).

use chrono::{Datelike, Months, NaiveDate};
use grantflow_domain::{Amount, Date};

/// 100 % in hundredths of a percent: what a set of shares adds up to.
pub(crate) const HUNDRED_PERCENT_HUNDREDTHS: i128 = 10_000;

/// Months in an IATI budget period at most (IATI rule 7.5.3: not longer than one year).
const BUDGET_PERIOD_MONTHS: u32 = 12;

/// Each weight's share of [`HUNDRED_PERCENT_HUNDREDTHS`], by the largest-remainder method:
/// every share is the floor of its exact share, and the hundredths left over go one each to
/// the largest remainders (the earlier weight first on a tie). The shares add up to exactly
/// 10,000 when the weights add up to more than 0; all are 0 otherwise. Weights must not be
/// negative.
pub(crate) fn hundredths_by_weight(weights: &[i128]) -> Vec<i128> {
    debug_assert!(weights.iter().all(|weight| *weight >= 0));
    let total: i128 = weights.iter().sum();
    if total <= 0 {
        return vec![0; weights.len()];
    }
    let mut shares: Vec<i128> = weights
        .iter()
        .map(|weight| weight * HUNDRED_PERCENT_HUNDREDTHS / total)
        .collect();
    let left = HUNDRED_PERCENT_HUNDREDTHS - shares.iter().sum::<i128>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // Stable: equal remainders keep their order.
    by_remainder
        .sort_by_key(|&at| std::cmp::Reverse(weights[at] * HUNDRED_PERCENT_HUNDREDTHS % total));
    for &at in by_remainder.iter().take(left as usize) {
        shares[at] += 1;
    }
    debug_assert_eq!(shares.iter().sum::<i128>(), HUNDRED_PERCENT_HUNDREDTHS);
    shares
}

/// A percentage in hundredths as IATI writes a decimal, without trailing zeros: `10000` is
/// `100`, `3333` is `33.33`, `5050` is `50.5`.
pub(crate) fn percentage_text(hundredths: i128) -> String {
    let (int, fraction) = (hundredths / 100, hundredths % 100);
    match fraction {
        0 => int.to_string(),
        f if f % 10 == 0 => format!("{int}.{}", f / 10),
        f => format!("{int}.{f:02}"),
    }
}

/// A period of days, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Period {
    pub(crate) start: Date,
    pub(crate) end: Date,
}

impl Period {
    /// Days in the period, both ends included (at least 1 when start <= end).
    pub(crate) fn days(self) -> i128 {
        i128::from((self.end.naive() - self.start.naive()).num_days() + 1)
    }
}

/// `start + months`, clamped to the month's last day (2012-02-29 + 12 months = 2013-02-28).
fn add_months(start: NaiveDate, months: u32) -> Option<NaiveDate> {
    start.checked_add_months(Months::new(months))
}

/// The periods of at most 12 months that cover `start` to `end`, counted from `start`: the
/// first ends the day before the first anniversary of `start` (or on `end`), the next starts
/// on that anniversary, and so on; each anniversary is counted from `start` itself, so that
/// a start on 29 February does not drift. Empty when `end` is before `start`.
pub(crate) fn yearly_periods(start: Date, end: Date) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut from = start.naive();
    let last = end.naive();
    let mut years: u32 = 0;
    while from <= last {
        years += 1;
        let next = add_months(start.naive(), BUDGET_PERIOD_MONTHS.saturating_mul(years));
        let until = next
            .and_then(|next| next.pred_opt())
            .map_or(last, |day_before| day_before.min(last));
        periods.push(Period {
            start: Date::from_naive(from),
            end: Date::from_naive(until),
        });
        let Some(next) = next else { break };
        from = next;
    }
    periods
}

/// The calendar years that `start` to `end` touch, each cut to the part inside it.
pub(crate) fn calendar_year_periods(start: Date, end: Date) -> Vec<Period> {
    let mut periods = Vec::new();
    let mut from = start.naive();
    let last = end.naive();
    while from <= last {
        let until = NaiveDate::from_ymd_opt(from.year(), 12, 31).map_or(last, |eoy| eoy.min(last));
        periods.push(Period {
            start: Date::from_naive(from),
            end: Date::from_naive(until),
        });
        let Some(next) = until.succ_opt() else { break };
        from = next;
    }
    periods
}

/// `amount` shared over `periods` in proportion to their days: the first k parts add up to
/// `amount x (days of the first k periods) / (all days)`, rounded down, so that every part
/// is within one minor unit of its exact share and the parts add up to `amount` exactly.
pub(crate) fn split_by_days(amount: Amount, periods: &[Period]) -> Vec<Amount> {
    let total_days: i128 = periods.iter().map(|period| period.days()).sum();
    if total_days <= 0 {
        return vec![Amount::ZERO; periods.len()];
    }
    let mut parts = Vec::with_capacity(periods.len());
    let (mut days_so_far, mut given) = (0i128, 0i128);
    for period in periods {
        days_so_far += period.days();
        let due = (amount.0 * days_so_far).div_euclid(total_days);
        parts.push(Amount(due - given));
        given = due;
    }
    debug_assert_eq!(given, amount.0);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        Date::parse(text).unwrap()
    }

    fn spans(periods: &[Period]) -> Vec<(String, String)> {
        periods
            .iter()
            .map(|p| (p.start.to_string(), p.end.to_string()))
            .collect()
    }

    #[test]
    fn shares_add_up_to_exactly_one_hundred() {
        assert_eq!(hundredths_by_weight(&[1, 1, 1]), vec![3334, 3333, 3333]);
        assert_eq!(hundredths_by_weight(&[2, 1]), vec![6667, 3333]);
        assert_eq!(hundredths_by_weight(&[0, 5]), vec![0, 10_000]);
        assert_eq!(hundredths_by_weight(&[0, 0]), vec![0, 0]);
        assert_eq!(hundredths_by_weight(&[1, 1_000_000_000]), vec![0, 10_000]);
        let weights = [312_170_700 * 10_000, 100_000 * 5_000, 100_000 * 5_000, 7];
        assert_eq!(hundredths_by_weight(&weights).iter().sum::<i128>(), 10_000);
    }

    #[test]
    fn percentages_are_written_without_trailing_zeros() {
        assert_eq!(percentage_text(10_000), "100");
        assert_eq!(percentage_text(3333), "33.33");
        assert_eq!(percentage_text(5050), "50.5");
        assert_eq!(percentage_text(5), "0.05");
        assert_eq!(percentage_text(0), "0");
    }

    #[test]
    fn budget_periods_are_yearly_from_the_start() {
        assert_eq!(
            spans(&yearly_periods(date("2013-01-01"), date("2015-09-30"))),
            vec![
                ("2013-01-01".into(), "2013-12-31".into()),
                ("2014-01-01".into(), "2014-12-31".into()),
                ("2015-01-01".into(), "2015-09-30".into()),
            ]
        );
        assert_eq!(
            spans(&yearly_periods(date("2012-02-29"), date("2016-03-01"))),
            vec![
                ("2012-02-29".into(), "2013-02-27".into()),
                ("2013-02-28".into(), "2014-02-27".into()),
                ("2014-02-28".into(), "2015-02-27".into()),
                ("2015-02-28".into(), "2016-02-28".into()),
                ("2016-02-29".into(), "2016-03-01".into()),
            ]
        );
        assert_eq!(
            spans(&yearly_periods(date("2013-05-01"), date("2013-05-01"))),
            vec![("2013-05-01".into(), "2013-05-01".into())]
        );
        assert!(yearly_periods(date("2013-05-02"), date("2013-05-01")).is_empty());
        for period in yearly_periods(date("2011-03-01"), date("2031-12-31")) {
            assert!(period.days() <= 366, "{period:?}");
        }
    }

    #[test]
    fn calendar_years_cut_a_period() {
        assert_eq!(
            spans(&calendar_year_periods(
                date("2013-07-01"),
                date("2015-01-31")
            )),
            vec![
                ("2013-07-01".into(), "2013-12-31".into()),
                ("2014-01-01".into(), "2014-12-31".into()),
                ("2015-01-01".into(), "2015-01-31".into()),
            ]
        );
    }

    #[test]
    fn amounts_split_by_days_add_up_to_the_whole() {
        let periods = yearly_periods(date("2013-01-01"), date("2015-09-30"));
        let parts = split_by_days(Amount(320_923_240), &periods);
        assert_eq!(parts.iter().map(|a| a.0).sum::<i128>(), 320_923_240);
        // 365, 365 and 273 days of 1,003.
        assert_eq!(
            parts,
            vec![Amount(116_786_622), Amount(116_786_623), Amount(87_349_995)]
        );
        assert_eq!(
            split_by_days(Amount(2), &periods),
            vec![Amount(0), Amount(1), Amount(1)]
        );
        assert_eq!(split_by_days(Amount(7), &periods[..1]), vec![Amount(7)]);
    }
}
