//! Text reports for people: what a cycle did (or would do), and one account's explanation.

use std::fmt::Write;

use crate::cycle::{ColourCounts, CycleReport, Mode, ScoredAccount, Trend};
use crate::scoring::{Colour, Receipt};
use crate::store::{Explained, RunStatus, StoredScore};
use crate::tasks::Decision;

/// How much of the change list to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every account whose score changes, one line each (`plan`, `cycle`).
    EveryChange,
    /// Only the biggest movers (the demo).
    Movers,
}

/// How the "Where to look next" lines spell the commands they suggest.
#[derive(Debug, Clone)]
pub struct Hints {
    /// The program as the person typed it: `touchpoint`, or `target/release/touchpoint`.
    pub program: String,
    /// The `--config` file the report's run was given, which the suggested commands need too.
    pub config: Option<String>,
    /// A store other than the configured one (the demo's), given as an environment override.
    pub store: Option<String>,
    /// Whether the source can still be asked (`plan` needs it; the demo's sandbox is gone).
    pub source_reachable: bool,
}

impl Hints {
    /// The program as this process was invoked, with its `--config` file, for a report
    /// printed by `plan` or `cycle`.
    pub fn for_this_process(config: Option<&std::path::Path>) -> Self {
        Hints {
            program: invoked_as(),
            config: config.map(|path| path.display().to_string()),
            store: None,
            source_reachable: true,
        }
    }

    /// The program with its `--config` file, quoted for a POSIX shell.
    fn program(&self) -> String {
        let program = quoted(&self.program);
        match &self.config {
            Some(file) => format!("{program} --config {}", quoted(file)),
            None => program,
        }
    }

    /// The command prefix that reaches the same store, quoted for a POSIX shell.
    fn command(&self) -> String {
        let program = self.program();
        match &self.store {
            Some(path) => format!("TOUCHPOINT__STORE__PATH={} {program}", quoted(path)),
            None => program,
        }
    }
}

/// `text` as one word of a POSIX shell command (unchanged when it needs no quotes).
fn quoted(text: &str) -> String {
    shlex::try_quote(text).map_or_else(|_| text.to_owned(), |word| word.into_owned())
}

/// The program as a person would type it again: `touchpoint` when it was found on the `PATH`,
/// otherwise its path, relative to the working folder when it lies below it (`cargo run`
/// starts `target/release/touchpoint` by its full path), and `./touchpoint` for one in the
/// working folder itself, which a shell would otherwise look for on the `PATH`.
pub fn invoked_as() -> String {
    let Some(first) = std::env::args_os().next() else {
        return "touchpoint".to_owned();
    };
    let path = std::path::PathBuf::from(first);
    if path.components().count() <= 1 {
        return path.display().to_string();
    }
    let relative = std::env::current_dir().ok().and_then(|here| {
        path.strip_prefix(&here)
            .ok()
            .map(std::path::Path::to_path_buf)
    });
    match relative {
        Some(relative) if relative.components().count() == 1 => {
            format!("./{}", relative.display())
        }
        Some(relative) => relative.display().to_string(),
        None => path.display().to_string(),
    }
}

/// Movers listed in a summary.
const MOVERS: usize = 10;
/// Rejected records listed in full; the rest are counted.
const REJECTIONS_SHOWN: usize = 20;

pub fn render(report: &CycleReport, detail: Detail, hints: &Hints) -> String {
    let mut out = String::new();
    header(&mut out, report);
    if matches!(report.status, RunStatus::Failed | RunStatus::Interrupted) {
        return out;
    }
    book(&mut out, report);
    health(&mut out, report);
    warnings(&mut out, report);
    changes(&mut out, report, detail);
    problems(&mut out, report);
    writeback(&mut out, report);
    surveys(&mut out, report, detail);
    tasks(&mut out, report, detail);
    next_steps(&mut out, report, hints);
    out
}

fn header(out: &mut String, report: &CycleReport) {
    let verb = match report.mode {
        Mode::Plan => "plan (nothing is stored or written)",
        Mode::Act => "cycle",
    };
    let as_of = report
        .as_of
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let _ = writeln!(out, "touchpoint {verb} as of {as_of}");
    let _ = writeln!(out, "  source: {}", report.source);
    let _ = writeln!(
        out,
        "  scoring: model {}, config version {}",
        report.model_version, report.config_version
    );
    if let Some(run_id) = &report.run_id {
        let _ = writeln!(out, "  run: {run_id}");
    }
    let _ = writeln!(out, "  status: {}", report.status.as_str());
    if let Some(reason) = &report.reason {
        let _ = writeln!(out, "  reason: {reason}");
    }
}

fn book(out: &mut String, report: &CycleReport) {
    let _ = writeln!(
        out,
        "\nBook: {} accounts pulled ({} archived, not scored); {} scored; {} held back; \
         {} record(s) rejected",
        report.accounts_pulled,
        report.archived,
        report.scored,
        report.held.len(),
        report.rejected.len()
    );
}

fn health(out: &mut String, report: &CycleReport) {
    let bands = &report.bands;
    let _ = writeln!(
        out,
        "\nHealth bands:  {}",
        colour_line(bands, report.scored)
    );
    let _ = writeln!(out, "\nBy measure:      green  yellow     red     n/a");
    for measure in ["deployment", "engagement", "adoption", "roi"] {
        let counts = report.measures.get(measure).cloned().unwrap_or_default();
        let _ = writeln!(
            out,
            "  {measure:<12} {:>7} {:>7} {:>7} {:>7}",
            counts.green, counts.yellow, counts.red, counts.na
        );
    }
}

fn warnings(out: &mut String, report: &CycleReport) {
    if report.warnings.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nCheck the data first:");
    for warning in &report.warnings {
        let _ = writeln!(out, "  ! {warning}");
    }
}

fn colour_line(counts: &ColourCounts, total: usize) -> String {
    let share = |n: usize| {
        if total == 0 {
            0.0
        } else {
            n as f64 * 100.0 / total as f64
        }
    };
    format!(
        "GREEN {} ({:.0}%)   YELLOW {} ({:.0}%)   RED {} ({:.0}%)   N/A {} ({:.0}%)",
        counts.green,
        share(counts.green),
        counts.yellow,
        share(counts.yellow),
        counts.red,
        share(counts.red),
        counts.na,
        share(counts.na)
    )
}

fn changes(out: &mut String, report: &CycleReport, detail: Detail) {
    let count = |trend: Trend| report.accounts.iter().filter(|a| a.trend == trend).count();
    let turned_red: Vec<&ScoredAccount> = report.accounts.iter().filter(|a| a.turned_red).collect();
    let _ = write!(
        out,
        "\nChanges: {} first scores (baseline), {} up, {} down, {} unchanged",
        count(Trend::New),
        count(Trend::Up),
        count(Trend::Down),
        count(Trend::Same),
    );
    let unscored = count(Trend::Unscored);
    if unscored > 0 {
        let _ = write!(out, ", {unscored} without an overall score now or before");
    }
    let _ = writeln!(out, "; {} turned red", turned_red.len());

    match detail {
        Detail::EveryChange => {
            let changed: Vec<&ScoredAccount> = report.changed().collect();
            if !changed.is_empty() {
                let _ = writeln!(out, "\nEvery score change ({}):", changed.len());
                changed.iter().for_each(|a| change_line(out, a));
            }
        }
        Detail::Movers => {
            let mut movers: Vec<&ScoredAccount> =
                report.accounts.iter().filter(|a| a.delta() != 0).collect();
            movers.sort_by_key(|a| (-a.delta().abs(), a.account_id.clone()));
            if !movers.is_empty() {
                let _ = writeln!(out, "\nBiggest movers:");
                movers.iter().take(MOVERS).for_each(|a| change_line(out, a));
            }
            if !turned_red.is_empty() {
                let _ = writeln!(out, "\nTurned red ({}):", turned_red.len());
                turned_red
                    .iter()
                    .take(MOVERS)
                    .for_each(|a| change_line(out, a));
            }
        }
    }
}

fn change_line(out: &mut String, account: &ScoredAccount) {
    let before = account
        .previous
        .as_ref()
        .map_or("new".to_owned(), score_text);
    let delta = match account.delta() {
        0 => String::new(),
        d => format!(" ({d:+})"),
    };
    let _ = writeln!(
        out,
        "  {:<12} {:<24} {before} -> {}{delta}",
        account.account_id,
        truncate(&account.name, 24),
        score_text(&account.current)
    );
    let _ = writeln!(out, "      why: {}", why(account));
}

/// The reasons worth reading: the measures that changed, or for a first score the ones that
/// are not green.
fn why(account: &ScoredAccount) -> String {
    let previous = account.previous.as_ref();
    let picked: Vec<String> = account
        .reasons
        .iter()
        .enumerate()
        .filter_map(|(i, reason)| match previous {
            Some(before) if before.measures[i] != account.current.measures[i] => {
                Some(format!("[was {}] {reason}", before.measures[i]))
            }
            None if account.current.measures[i] != Colour::Green => Some(reason.clone()),
            _ => None,
        })
        .collect();
    if picked.is_empty() {
        return match previous {
            Some(_) => "no measure changed colour".to_owned(),
            None => "every measure is green".to_owned(),
        };
    }
    picked.join("; ")
}

fn score_text(score: &StoredScore) -> String {
    match score.score {
        Some(value) => format!("{value} {}", score.band),
        None => "n/a".to_owned(),
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let cut: String = text.chars().take(width.saturating_sub(1)).collect();
    format!("{cut}~")
}

fn problems(out: &mut String, report: &CycleReport) {
    if !report.held.is_empty() {
        let _ = writeln!(out, "\nHeld back (not scored, data incomplete):");
        for (account, why) in report.held.iter().take(REJECTIONS_SHOWN) {
            let _ = writeln!(out, "  {account}: {why}");
        }
    }
    if report.rejected.is_empty() {
        return;
    }
    let _ = writeln!(out, "\nRejected records ({}):", report.rejected.len());
    for r in report.rejected.iter().take(REJECTIONS_SHOWN) {
        let _ = writeln!(
            out,
            "  {} {}: {}",
            r.dataset,
            r.record_id.as_deref().unwrap_or("(no id)"),
            r.reason
        );
    }
    if report.rejected.len() > REJECTIONS_SHOWN {
        let _ = writeln!(
            out,
            "  ... and {} more (--output json lists them all)",
            report.rejected.len() - REJECTIONS_SHOWN
        );
    }
}

fn writeback(out: &mut String, report: &CycleReport) {
    let _ = write!(out, "\nWrite-back: {} account(s) due", report.writes_due);
    if let Some(note) = &report.writeback_note {
        let _ = writeln!(out, "; {note}");
        return;
    }
    match (&report.writeback, report.mode) {
        (_, Mode::Plan) => {
            let _ = writeln!(out, "; plan writes nothing");
        }
        (Some(w), Mode::Act) => {
            let _ = writeln!(
                out,
                "; {} stored by the CRM, {} refused, {} batch(es) failed",
                w.stored_count,
                w.refused.len(),
                w.failed_batches.len()
            );
        }
        (None, Mode::Act) => {
            let _ = writeln!(out);
        }
    }
    if let Some(client) = report.client {
        let _ = writeln!(
            out,
            "CRM traffic: {} requests, {:.1} MB read, {} retries, {} rate-limited",
            client.requests,
            client.bytes as f64 / 1e6,
            client.retries,
            client.rate_limited
        );
    }
}

fn surveys(out: &mut String, report: &CycleReport, detail: Detail) {
    let Some(surveys) = &report.surveys else {
        return;
    };
    let _ = write!(out, "\nSurveys: ");
    if let Some(note) = &surveys.note {
        let _ = writeln!(out, "{note}");
        let planned = surveys.send.len() + surveys.deferred.len() + surveys.held.len();
        if planned + surveys.skipped.len() == 0 {
            return;
        }
        let _ = write!(out, "  planned: ");
    }
    let verb = match (report.replay, report.mode) {
        (true, _) => "due (listed only, not sent)",
        (false, Mode::Plan) => "would send",
        (false, Mode::Act) => "due to send",
    };
    let _ = writeln!(
        out,
        "{} {verb}, {} deferred (over budget), {} skipped (missed), {} held",
        surveys.send.len(),
        surveys.deferred.len(),
        surveys.skipped.len(),
        surveys.held.len()
    );
    if surveys.before_start > 0 {
        let _ = writeln!(
            out,
            "  {} wave(s) closed before touchpoint began surveying from this store: not missed, \
             not sent; those contacts start with their next wave",
            surveys.before_start
        );
    }
    if let Some(backend) = &surveys.backend {
        let done = if surveys.delivers { "sent" } else { "written" };
        let _ = writeln!(
            out,
            "  mail ({backend}): {} {done}, {} failed, {} address(es) suppressed after a hard \
             bounce",
            surveys.sent,
            surveys.failures.len(),
            surveys.bounced
        );
    }
    if surveys.expired > 0 {
        let _ = writeln!(
            out,
            "  {} waiting email(s) skipped: their grace period ended",
            surveys.expired
        );
    }
    if !surveys.in_sending.is_empty() {
        let _ = writeln!(
            out,
            "  !! {} email(s) were being sent when a run stopped; they are never re-sent \
             blindly. Check the relay's log for their Message-ID, then run \
             `touchpoint outbox --resolve KEY --as sent|retry|skipped`:",
            surveys.in_sending.len()
        );
        for row in &surveys.in_sending {
            let id = row.message_id.as_deref().unwrap_or("?");
            let _ = writeln!(out, "     {} <{id}>", row.key);
        }
    }
    let shown = match detail {
        Detail::EveryChange => usize::MAX,
        Detail::Movers => MOVERS,
    };
    let listed = [("+", &surveys.send), ("~ deferred", &surveys.deferred)];
    for (mark, emails) in listed {
        for email in emails.iter().take(shown) {
            let _ = writeln!(
                out,
                "  {mark} {} {} wave {} to {} ({}): {}",
                email.account_id,
                crate::surveys::cadence::survey_name(email.survey),
                email.wave,
                crate::telemetry::mask_email(&email.recipient),
                email.contact_id,
                email.why
            );
        }
        if emails.len() > shown {
            let _ = writeln!(out, "  ... and {} more", emails.len() - shown);
        }
    }
    for (email, why) in surveys.skipped.iter().take(shown) {
        let _ = writeln!(
            out,
            "  - skipped {} {} wave {} ({}): {why}",
            email.account_id,
            crate::surveys::cadence::survey_name(email.survey),
            email.wave,
            email.contact_id
        );
    }
    for hold in surveys.held.iter().take(shown) {
        let _ = writeln!(
            out,
            "  = held {} {} wave {}{}: {}",
            hold.account_id,
            crate::surveys::cadence::survey_name(hold.survey),
            hold.wave,
            hold.contact_id
                .as_deref()
                .map_or(String::new(), |c| format!(" ({c})")),
            hold.why
        );
    }
    for (key, error) in surveys.failures.iter().take(shown) {
        let _ = writeln!(out, "  ! failed {key}: {error}");
    }
}

fn tasks(out: &mut String, report: &CycleReport, detail: Detail) {
    let Some(tasks) = &report.tasks else {
        return;
    };
    let _ = write!(out, "\nTasks: ");
    if let Some(note) = &tasks.note {
        let _ = writeln!(out, "{note}");
        if !report.replay {
            return;
        }
        let _ = write!(out, "  planned: ");
    }
    let verb = match (report.replay, report.mode) {
        (true, _) => "due (listed only, not opened)",
        (false, Mode::Plan) => "would open",
        (false, Mode::Act) => "opened",
    };
    let _ = writeln!(
        out,
        "{} {verb}, {} held, {} not due",
        tasks.opened.len(),
        tasks.held.len(),
        tasks.skipped.len()
    );
    if let Some(breaker) = tasks.breaker.as_ref().filter(|b| b.tripped) {
        let _ = writeln!(out, "  !! {}", breaker.describe());
    }
    if report.mode == Mode::Act && !report.replay {
        let _ = writeln!(
            out,
            "  CRM: {} confirmed ({} already there), {} failed, {} not sent (daily limit), {} \
             task status(es) updated from the CRM's list",
            tasks.confirmed,
            tasks.already_there,
            tasks.failures.len(),
            tasks.not_sent,
            tasks.reconciled
        );
    }
    let shown = match detail {
        Detail::EveryChange => usize::MAX,
        Detail::Movers => MOVERS,
    };
    for task in tasks.opened.iter().take(shown) {
        let _ = writeln!(
            out,
            "  + {} [{} {}] owner {} due {} ({}): {}",
            task.account_id,
            task.kind,
            task.priority.as_str(),
            task.owner_id,
            task.due_date,
            task.due_zone,
            task.subject
        );
    }
    if tasks.opened.len() > shown {
        let _ = writeln!(out, "  ... and {} more", tasks.opened.len() - shown);
    }
    let held = tasks.held.iter().take(shown).map(|d| ("= held", d));
    let skipped = tasks.skipped.iter().take(shown).map(|d| ("- not due", d));
    for (mark, decision) in held.chain(skipped) {
        if let Decision::Held {
            account_id,
            reason,
            why,
            ..
        }
        | Decision::Skipped {
            account_id,
            reason,
            why,
            ..
        } = decision
        {
            let _ = writeln!(out, "  {mark} {account_id} ({}): {why}", reason.as_str());
        }
    }
}

fn next_steps(out: &mut String, report: &CycleReport, hints: &Hints) {
    let worst_measure = ["engagement", "adoption", "deployment", "roi"]
        .iter()
        .filter_map(|m| report.measures.get(*m).map(|c| (*m, c.red)))
        .max_by_key(|(_, red)| *red);
    let example = report
        .accounts
        .iter()
        .filter(|a| a.current.band == Colour::Red)
        .max_by_key(|a| (a.turned_red, -a.delta()));

    let _ = writeln!(out, "\nWhere to look next:");
    if let Some((measure, red)) = worst_measure.filter(|(_, red)| *red > 0) {
        let _ = writeln!(
            out,
            "  - {measure} is the most common red measure ({red} accounts)"
        );
    }
    if let Some(account) = example {
        // A plan stores nothing: there is a receipt to explain only once a cycle has run.
        let after = match report.mode {
            Mode::Plan => format!("after `{} cycle`, ", hints.program()),
            Mode::Act => String::new(),
        };
        let _ = writeln!(
            out,
            "  - {after}{} explain {}   (why {} is red)",
            hints.command(),
            account.account_id,
            account.name
        );
    }
    if hints.source_reachable {
        let _ = writeln!(
            out,
            "  - {} plan --output json   (every account with its reasons)",
            hints.program()
        );
    } else {
        let _ = writeln!(
            out,
            "  - {} runs   (the runs, with their counts and reasons)",
            hints.command()
        );
    }
}

/// Renders `explain`: the receipt (of the latest score, or of the one in force on the day
/// asked for), then the history of changes up to it.
pub fn render_explained(explained: &Explained) -> anyhow::Result<String> {
    let receipt: Receipt = serde_json::from_value(explained.receipt.clone())?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Account {}: {} (trend {}), scored as of {} in run {}",
        explained.account_id,
        score_text(&explained.scored),
        explained.trend,
        explained.as_of,
        explained.run_id
    );
    match explained.in_force_on {
        Some(day) => {
            let _ = writeln!(out, "The score in force on {day} (the latest may differ)\n");
        }
        None => {
            let written = explained.written_at.as_deref().unwrap_or("not yet");
            let _ = writeln!(out, "Written to the CRM: {written}\n");
        }
    }
    out.push_str(&receipt.render_text());
    let until = explained
        .in_force_on
        .map_or(String::new(), |day| format!(" up to {day}"));
    let _ = writeln!(
        out,
        "\nHistory{until} (a row each time the score, band or a measure changed):"
    );
    let _ = writeln!(
        out,
        "  {:<22} {:>5} {:<7} deployment/engagement/adoption/roi",
        "as of", "score", "band"
    );
    for row in &explained.history {
        let score = row.scored.score.map_or("n/a".to_owned(), |s| s.to_string());
        let _ = writeln!(
            out,
            "  {:<22} {:>5} {:<7} {}",
            row.as_of,
            score,
            row.scored.band,
            row.scored.measures.map(Colour::as_str).join("/")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suggested_command_quotes_what_the_shell_would_split() {
        let hints = Hints {
            program: "target/release/touchpoint".to_owned(),
            config: None,
            store: Some("/home/cs lead/demo's/touchpoint.db".to_owned()),
            source_reachable: false,
        };
        let plain = Hints {
            store: Some("data/demo/touchpoint.db".to_owned()),
            ..hints.clone()
        };

        let words = shlex::split(&hints.command()).expect("a shell command");

        assert_eq!(
            words,
            [
                "TOUCHPOINT__STORE__PATH=/home/cs lead/demo's/touchpoint.db",
                "target/release/touchpoint"
            ]
        );
        assert_eq!(
            plain.command(),
            "TOUCHPOINT__STORE__PATH=data/demo/touchpoint.db target/release/touchpoint"
        );
        let configured = Hints {
            config: Some("my book.toml".to_owned()),
            store: None,
            ..hints
        };
        assert_eq!(
            configured.command(),
            "target/release/touchpoint --config 'my book.toml'"
        );
    }
}
