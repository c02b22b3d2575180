//! Charts drawn by the server as inline SVG: bars of amounts and a step line of
//! disbursements over time. Amounts are exact minor units ([`Amount`]); only the drawing's
//! coordinates are scaled, in integer arithmetic. Colours come from the stylesheet's
//! classes (the CSP allows no inline style).

use grantflow_domain::Amount;
use maud::{html, Markup};

/// Width of a bar chart's drawing, in user units of its `viewBox`.
const BAR_WIDTH: i128 = 300;
/// Height of one bar.
const BAR_HEIGHT: i128 = 10;
/// Width and height of the time chart's drawing.
const LINE_WIDTH: i128 = 600;
const LINE_HEIGHT: i128 = 200;
/// Room left of and below the time chart's plot for its labels.
const LINE_MARGIN_LEFT: i128 = 8;
const LINE_MARGIN_BOTTOM: i128 = 24;
const LINE_MARGIN_TOP: i128 = 16;

/// One bar of a bar chart: its value, its CSS class and its name (for the title).
pub(crate) struct Bar<'a> {
    pub value: Amount,
    pub class: &'static str,
    pub name: &'a str,
}

/// `value` as a share of `scale` in `width` units, clamped to the drawing.
fn scaled(value: Amount, scale: Amount, width: i128) -> i128 {
    if scale.0 <= 0 || value.0 <= 0 {
        return 0;
    }
    (value.0.saturating_mul(width) / scale.0).clamp(0, width)
}

/// Bars one under the other against a common `scale` (e.g. an agency's allocation), drawn
/// over a track the width of the scale; `title` says what the chart shows in words.
pub(crate) fn bars(title: &str, scale: Amount, bars: &[Bar<'_>]) -> Markup {
    let rows = i128::try_from(bars.len()).unwrap_or(0).max(1);
    let height = rows * (BAR_HEIGHT + 2);
    html! {
        svg class="bars" role="img" viewBox={"0 0 " (BAR_WIDTH) " " (height)}
            preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            @for (row, bar) in bars.iter().enumerate() {
                @let y = i128::try_from(row).unwrap_or(0) * (BAR_HEIGHT + 2);
                rect class="track" x="0" y=(y) width=(BAR_WIDTH) height=(BAR_HEIGHT) {}
                rect class=(bar.class) x="0" y=(y) width=(scaled(bar.value, scale, BAR_WIDTH))
                    height=(BAR_HEIGHT) data-name=(bar.name) {}
            }
        }
    }
}

/// One point of the time chart: a day (days since the common era) and the running total
/// after it.
pub(crate) struct Point {
    pub day: i64,
    pub label: String,
    pub total: Amount,
}

/// A step line of a running total over business dates, with the first and last dates and
/// the highest total as labels. `title` is the chart's accessible name.
pub(crate) fn timeline(title: &str, points: &[Point], highest_label: &str) -> Markup {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return html! {
            svg class="timeline" role="img" viewBox={"0 0 " (LINE_WIDTH) " 40"}
                xmlns="http://www.w3.org/2000/svg" {
                title { (title) }
                text x="8" y="24" { "No disbursement yet." }
            }
        };
    };
    let highest = points
        .iter()
        .map(|point| point.total)
        .max()
        .unwrap_or(Amount::ZERO);
    let span = i128::from((last.day - first.day).max(1));
    let plot_width = LINE_WIDTH - 2 * LINE_MARGIN_LEFT;
    let plot_height = LINE_HEIGHT - LINE_MARGIN_BOTTOM - LINE_MARGIN_TOP;
    let x = |day: i64| LINE_MARGIN_LEFT + i128::from(day - first.day) * plot_width / span;
    let y = |total: Amount| LINE_MARGIN_TOP + plot_height - scaled(total, highest, plot_height);
    let baseline = y(Amount::ZERO);
    let mut path = format!("M{} {}", x(first.day), baseline);
    let mut previous = Amount::ZERO;
    for point in points {
        path.push_str(&format!(
            " L{} {} L{} {}",
            x(point.day),
            y(previous),
            x(point.day),
            y(point.total)
        ));
        previous = point.total;
    }
    path.push_str(&format!(" L{} {}", x(last.day), y(previous)));
    html! {
        svg class="timeline" role="img" viewBox={"0 0 " (LINE_WIDTH) " " (LINE_HEIGHT)}
            xmlns="http://www.w3.org/2000/svg" {
            title { (title) }
            line class="axis" x1=(LINE_MARGIN_LEFT) y1=(baseline)
                x2=(LINE_WIDTH - LINE_MARGIN_LEFT) y2=(baseline) {}
            path class="line" d=(path) {}
            @for point in points {
                circle class="point" cx=(x(point.day)) cy=(y(point.total)) r="3" {
                    title { (point.label) }
                }
            }
            text class="label" x=(LINE_MARGIN_LEFT) y=(LINE_HEIGHT - 6) { (first.label) }
            text class="label end" x=(LINE_WIDTH - LINE_MARGIN_LEFT) y=(LINE_HEIGHT - 6) { (last.label) }
            text class="label" x=(LINE_MARGIN_LEFT) y=(LINE_MARGIN_TOP - 4) { (highest_label) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_exactly_and_stay_in_the_drawing() {
        assert_eq!(scaled(Amount(50), Amount(200), 300), 75);
        assert_eq!(scaled(Amount(500), Amount(200), 300), 300);
        assert_eq!(scaled(Amount(-5), Amount(200), 300), 0);
        assert_eq!(scaled(Amount(5), Amount::ZERO, 300), 0);
        let markup = bars(
            "IOM: 25 of 100 disbursed",
            Amount(100),
            &[Bar {
                value: Amount(25),
                class: "disbursed",
                name: "disbursed",
            }],
        )
        .into_string();
        assert!(markup.contains(r#"role="img""#), "{markup}");
        assert!(markup.contains("<title>IOM: 25 of 100 disbursed</title>"));
        assert!(markup.contains(r#"class="disbursed" x="0" y="0" width="75""#));
    }

    #[test]
    fn the_timeline_steps_up_at_each_date() {
        let points = [
            Point {
                day: 0,
                label: "2012-10-01: 100".into(),
                total: Amount(100),
            },
            Point {
                day: 10,
                label: "2012-10-11: 200".into(),
                total: Amount(200),
            },
        ];
        let markup = timeline("Disbursed over time", &points, "200").into_string();
        // x: 8 and 592; y: baseline 176, 100 -> 96, 200 -> 16.
        assert!(
            markup.contains(r#"d="M8 176 L8 176 L8 96 L592 96 L592 16 L592 16""#),
            "{markup}"
        );
        assert!(markup.contains("<title>Disbursed over time</title>"));
        let empty = timeline("Disbursed over time", &[], "0").into_string();
        assert!(empty.contains("No disbursement yet."));
    }
}
