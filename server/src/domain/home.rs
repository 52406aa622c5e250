//! What a reviewer has to do, for their units and today: the periodic reports due or late,
//! submissions waiting for review, returned records not yet sent again, registry reminders
//! falling due, and proposed amendments. The desk's home page shows it, each a link.

use std::collections::{HashMap, HashSet};

use diaban_core::Template;
use time::Date;

use crate::domain::access::Access;
use crate::domain::grid::{self, most_advanced};
use crate::store::{Db, DbError, SENT_UP, User};

/// Where a periodic report stands for the period most recently ended.
#[derive(Clone, Debug)]
pub struct PeriodStatus {
    pub template_id: String,
    pub label: String,
    pub period: String,
    pub due: Date,
    /// Whether the due date has passed.
    pub late: bool,
    /// Communes in the user's units.
    pub communes: usize,
    /// Communes whose report was sent (submitted, signed off or approved).
    pub sent: usize,
    /// Communes whose report was started or returned but not sent.
    pub started: usize,
    /// Communes with no report at all.
    pub missing: usize,
}

/// A template's records in one workflow state: how many.
#[derive(Clone, Debug)]
pub struct StateCount {
    pub template_id: String,
    pub label: String,
    pub state: String,
    pub count: i64,
}

/// The home page's summary.
#[derive(Clone, Debug)]
pub struct Home {
    pub today: Date,
    pub reports: Vec<PeriodStatus>,
    /// Submitted or signed off, waiting for a reviewer's decision.
    pub waiting: Vec<StateCount>,
    /// Returned to the commune and not yet sent again.
    pub returned: Vec<StateCount>,
    /// Registry reminders due within their lead time, and how many of them are overdue.
    pub reminders: usize,
    pub overdue_reminders: usize,
    pub amendments: i64,
}

/// The summary for `user` on `today`, labels in `lang`.
pub async fn home(db: &Db, user: &User, today: Date, lang: &str) -> Result<Home, DbError> {
    let access = Access::of(db, user).await?;
    let templates: Vec<Template> =
        db.published_templates().await?.into_iter().filter(|t| !access.hidden.contains(&t.id)).collect();
    let label = |id: &str| {
        templates.iter().find(|t| t.id == id).map_or_else(|| id.to_owned(), |t| t.label.text(lang).to_owned())
    };
    let communes: Vec<String> = db.communes_in(&access.units).await?.into_iter().map(|u| u.code).collect();

    let mut reports = Vec::new();
    for template in templates.iter() {
        let Some(spec) = &template.period else { continue };
        // The current period and the one before it; the latter is the one being reported.
        let Some((period, bounds)) = grid::periods(spec, today, 2).into_iter().nth(1) else { continue };
        let rows = db.period_states(&template.id, std::slice::from_ref(&period), &communes).await?;
        let best: HashMap<(String, String), String> = most_advanced(rows);
        let sent: HashSet<&str> =
            best.iter().filter(|(_, s)| SENT_UP.contains(&s.as_str())).map(|((u, _), _)| u.as_str()).collect();
        let started = best.len() - sent.len();
        reports.push(PeriodStatus {
            template_id: template.id.clone(),
            label: label(&template.id),
            period,
            due: bounds.due,
            late: today > bounds.due,
            communes: communes.len(),
            sent: sent.len(),
            started,
            missing: communes.len().saturating_sub(best.len()),
        });
    }

    let counts = db.state_counts(&access.units, &access.hidden, &["submitted", "signed_off", "returned"]).await?;
    let (mut waiting, mut returned) = (Vec::new(), Vec::new());
    for (template_id, state, count) in counts {
        let line = StateCount { label: label(&template_id), template_id, state, count };
        if line.state == "returned" { returned.push(line) } else { waiting.push(line) }
    }

    let reminders = crate::domain::reports::reminders_for(db, user, &diaban_core::clock::iso(today), lang).await?;
    let overdue_reminders = reminders.iter().filter(|r| r.days_left < 0).count();
    Ok(Home {
        today,
        reports,
        waiting,
        returned,
        reminders: reminders.len(),
        overdue_reminders,
        amendments: db.pending_amendments(&access.units, &access.hidden).await?,
    })
}
