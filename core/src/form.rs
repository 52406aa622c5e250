//! The form engine: a template compiled for use, shared by the phone and the server.
//!
//! [`Form::compile`] runs every publication check (names, choice lists, bounds, patterns,
//! CEL syntax, references, calculation cycles, types); a template that compiles never fails
//! in front of an officer. [`Form::evaluate`] turns a record's values into the render model:
//! visible fields in order with labels, values, choices, errors and conflicts, the computed
//! values, and whether the record can be submitted.
//!
//! Semantics of expressions at run time:
//! - an unanswered field is `null`;
//! - `relevant` that fails (e.g. compares a `null`) counts as false: the field is hidden;
//! - `constraint` runs only on an answered field, with the answer also bound to `value`,
//!   and one that fails to evaluate does not block (the inputs are not there yet);
//! - `calculation` that fails gives `null`.
//!
//! Hidden fields are neither required nor validated.

use std::collections::{BTreeMap, HashMap, HashSet};

use cel_interpreter::{Context, ExecutionError, Program, Value};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use crate::expr::{self, PERIOD_END, PERIOD_START, TODAY, VALUE};
use crate::period::PeriodError;
use crate::record::ConflictValue;
use crate::template::{Choice, ChoicesRef, Field, FieldType, SHARED_PREFIX, Template, TemplateKind};
use crate::value::FieldValue;

/// Why a template cannot be published. Each names the field and what to fix.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PublishError {
    #[error("not valid JSON for the template format: {0}")]
    Parse(String),
    #[error("template id must be lowercase letters, digits and '_' (got {0:?})")]
    BadId(String),
    #[error("template version must be at least 1")]
    BadVersion,
    #[error("the template has no fields")]
    NoFields,
    #[error("field name {0:?} must be lowercase letters, digits and '_', starting with a letter")]
    BadFieldName(String),
    #[error("field name {0:?} is reserved for expressions")]
    ReservedName(String),
    #[error("field name {0:?} is used more than once")]
    DuplicateField(String),
    #[error("field {field:?} refers to choice list {list:?}, which does not exist")]
    MissingChoiceList { field: String, list: String },
    #[error("field {0:?} is a choice field without choices")]
    NoChoices(String),
    #[error("field {field:?} has the choice value {value:?} twice")]
    DuplicateChoice { field: String, value: String },
    #[error("field {0:?} has min greater than max")]
    MinAboveMax(String),
    #[error("field {field:?}: {attribute} does not apply to a {field_type:?} field")]
    MisplacedAttribute { field: String, attribute: &'static str, field_type: FieldType },
    #[error("field {field:?}: pattern is not a valid regular expression: {message}")]
    BadPattern { field: String, message: String },
    #[error("field {field:?}: default {message}")]
    BadDefault { field: String, message: String },
    #[error("calculated field {0:?} needs a calculation and a result_type")]
    IncompleteCalculation(String),
    #[error("repeat group {0:?} has no fields")]
    EmptyRepeat(String),
    #[error("field {field:?}: {which} is not valid CEL: {message}")]
    InvalidExpression { field: String, which: &'static str, message: String },
    #[error("field {field:?}: {which} uses {name:?}, which is not a field visible there")]
    UnknownReference { field: String, which: &'static str, name: String },
    #[error("field {field:?}: {which} calls unknown function {name:?}")]
    UnknownFunction { field: String, which: &'static str, name: String },
    #[error("calculations depend on each other in a cycle: {}", .0.join(" → "))]
    CalculationCycle(Vec<String>),
    #[error("field {field:?}: {which} has a type error: {message}")]
    TypeMismatch { field: String, which: &'static str, message: String },
    #[error("a periodic report needs a period, and only a periodic report may have one")]
    PeriodMismatch,
    #[error("period: {0}")]
    BadPeriod(#[from] PeriodError),
    #[error("{0}")]
    BadIndicator(String),
    #[error("{0}")]
    BadReminder(String),
}

/// A problem that keeps a record from being submitted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    /// Path of the field: `name`, or `group/row_id/name` inside repeat rows.
    pub field: String,
    pub message: String,
}

/// What an evaluation knows beyond the record's values.
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// `YYYY-MM-DD`
    pub today: String,
    /// First and last day (`YYYY-MM-DD`) of the record's period, for periodic reports.
    pub period: Option<(String, String)>,
    /// "vi" or "en".
    pub lang: String,
}

/// One visible field of the render model.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderItem {
    pub path: String,
    pub name: String,
    pub label: String,
    pub hint: Option<String>,
    pub field_type: FieldType,
    /// The answer (or the computed value) as JSON; `None` when unanswered.
    pub value: Option<Json>,
    /// The same value typed (for calculated fields, as their result type); `None` for
    /// repeat groups and notes.
    pub typed: Option<FieldValue>,
    /// The value as a person reads it: choice labels, "Có"/"Không", numbers.
    pub display: String,
    pub required: bool,
    pub read_only: bool,
    /// (value, label) for choice fields.
    pub choices: Vec<(String, String)>,
    pub errors: Vec<String>,
    /// Concurrent values kept by the document, for a person to settle by writing the field.
    pub conflicts: Vec<ConflictView>,
    /// For repeat groups: the rows, each with its own items.
    pub rows: Vec<RenderRow>,
}

/// One of a field's concurrent values, as shown: the value, who wrote it, when, where.
#[derive(Clone, Debug, PartialEq)]
pub struct ConflictView {
    pub display: String,
    pub value: Json,
    pub by: Option<String>,
    pub device: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RenderRow {
    pub id: String,
    pub items: Vec<RenderItem>,
}

/// The result of evaluating a record.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub items: Vec<RenderItem>,
    /// Everything that blocks submission (errors of visible fields, missing required answers).
    pub issues: Vec<Issue>,
    /// Values of top-level calculated fields.
    pub calculated: BTreeMap<String, Json>,
}

impl Evaluation {
    pub fn can_submit(&self) -> bool {
        self.issues.is_empty()
    }
}

#[derive(Default)]
struct Compiled {
    relevant: Option<Program>,
    constraint: Option<Program>,
    calculation: Option<Program>,
    pattern: Option<regex::Regex>,
}

/// A checked template with its expressions compiled.
pub struct Form {
    template: Template,
    root: Context<'static>,
    compiled: HashMap<String, Compiled>,
    /// Top-level calculated fields in dependency order.
    calc_order: Vec<String>,
    /// Calculated fields of each repeat group, in dependency order.
    row_calc_order: HashMap<String, Vec<String>>,
}

impl Form {
    pub fn from_json(text: &str) -> Result<Form, PublishError> {
        let template: Template = serde_json::from_str(text).map_err(|e| PublishError::Parse(e.to_string()))?;
        Form::compile(template)
    }

    /// Checks a template and compiles its expressions.
    pub fn compile(template: Template) -> Result<Form, PublishError> {
        check_structure(&template)?;
        let mut compiled = HashMap::new();
        let walk = template.walk();
        // Names an expression may use: top-level fields, plus the fields of enclosing groups.
        let top: HashSet<&str> = template.fields.iter().map(|f| f.name.as_str()).collect();
        for (parents, field) in &walk {
            let mut visible: HashSet<&str> = top.clone();
            for p in parents {
                visible.extend(p.fields.iter().map(|f| f.name.as_str()));
            }
            let mut c = Compiled::default();
            for (which, source) in expressions(field) {
                let program = compile_expr(field, which, source, &visible)?;
                match which {
                    "relevant" => c.relevant = Some(program),
                    "constraint" => c.constraint = Some(program),
                    _ => c.calculation = Some(program),
                }
            }
            if let Some(p) = &field.pattern {
                c.pattern = Some(
                    regex::Regex::new(&format!("^(?:{p})$"))
                        .map_err(|e| PublishError::BadPattern { field: field.name.clone(), message: e.to_string() })?,
                );
            }
            compiled.insert(field.name.clone(), c);
        }
        let calc_order = calculation_order(&template.fields)?;
        let mut row_calc_order = HashMap::new();
        for (_, field) in &walk {
            if field.field_type == FieldType::Repeat {
                row_calc_order.insert(field.name.clone(), calculation_order(&field.fields)?);
            }
        }
        let form = Form { template, root: expr::root_context(), compiled, calc_order, row_calc_order };
        form.check_types()?;
        Ok(form)
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    /// The environment for a record of this form on `today` (the caller's [`crate::clock::Clock`]),
    /// and the bounds of the record's period for periodic reports.
    pub fn env(&self, period: Option<&str>, lang: &str, today: time::Date) -> Env {
        let period = self
            .template
            .period
            .as_ref()
            .zip(period)
            .and_then(|(spec, key)| spec.bounds(key).ok())
            .map(|b| (crate::clock::iso(b.start), crate::clock::iso(b.end)));
        Env { today: crate::clock::iso(today), period, lang: lang.to_owned() }
    }

    /// Starts a record of this form: its tallies at zero, its repeat groups empty, its
    /// defaults filled in.
    pub fn new_record(
        &self,
        meta: &crate::record::RecordMeta,
        actor: automerge::ActorId,
        now: i64,
    ) -> Result<crate::record::RecordDoc, crate::record::RecordError> {
        let mut doc = crate::record::RecordDoc::create(meta, actor)?;
        let (counters, groups) = structure(&self.template.fields);
        doc.prepare(&crate::record::FieldPath::top(""), &counters, &groups, now)?;
        for field in &self.template.fields {
            if let Some(default) = field.default.as_ref().and_then(|d| FieldValue::from_json(field.field_type, d)) {
                doc.set_field(&crate::record::FieldPath::top(&field.name), &default, now)?;
            }
        }
        Ok(doc)
    }

    /// Appends a row to the group `path.name` with its tallies and nested groups prepared.
    pub fn add_row(
        &self,
        doc: &mut crate::record::RecordDoc,
        path: &crate::record::FieldPath,
        now: i64,
    ) -> Result<String, crate::record::RecordError> {
        let row = doc.add_row(path, now)?;
        let (counters, groups) = self.template.find(&path.name).map(|g| structure(&g.fields)).unwrap_or_default();
        let mut rows = path.rows.clone();
        rows.push((path.name.clone(), row.clone()));
        doc.prepare(&crate::record::FieldPath { rows, name: String::new() }, &counters, &groups, now)?;
        Ok(row)
    }

    /// Evaluates a record document as it stands (values and conflicts) on `today`.
    pub fn evaluate_record(&self, doc: &mut crate::record::RecordDoc, lang: &str, today: time::Date) -> Evaluation {
        let period = doc.meta().ok().and_then(|m| m.period);
        self.evaluate(&doc.values().into_iter().collect(), &self.env(period.as_deref(), lang, today), &doc.conflicts())
    }

    /// Checks one answer for one field on its own: type, choices, bounds, length, pattern.
    /// Cross-field constraints are reported by [`Form::evaluate`] instead.
    pub fn check_answer(&self, name: &str, value: &FieldValue) -> Result<(), String> {
        let field = self.template.find(name).ok_or_else(|| format!("the template has no field {name:?}"))?;
        if !field.field_type.holds_answer() {
            return Err(format!("{name:?} is not a field one answers"));
        }
        if field.read_only {
            return Err(format!("{name:?} is read-only"));
        }
        if field.field_type == FieldType::Counter {
            return Err(format!("{name:?} is a tally: add to it instead of setting it"));
        }
        if !value.fits(field.field_type) {
            return Err(format!("{name:?} takes a {:?} value", field.field_type));
        }
        let json = value.to_json();
        crate::limits::check_value(name, &json).map_err(|e| e.to_string())?;
        self.static_errors(field, &json).into_iter().next().map_or(Ok(()), Err)
    }

    /// Evaluates a record's values: the render model, the issues, the calculated values.
    /// `conflicts` maps field paths to the concurrent values the document holds.
    pub fn evaluate(
        &self,
        values: &Map<String, Json>,
        env: &Env,
        conflicts: &BTreeMap<String, Vec<ConflictValue>>,
    ) -> Evaluation {
        let mut scope = self.root.new_inner_scope();
        scope.add_variable_from_value(TODAY, env.today.as_str());
        let (start, end) = env.period.clone().unzip();
        scope.add_variable_from_value(PERIOD_START, start.map(Value::from).unwrap_or(Value::Null));
        scope.add_variable_from_value(PERIOD_END, end.map(Value::from).unwrap_or(Value::Null));
        let mut values = values.clone();
        for field in &self.template.fields {
            match field.field_type {
                FieldType::Repeat => {}
                FieldType::Calculated | FieldType::Note => {}
                _ => scope.add_variable_from_value(
                    field.name.as_str(),
                    values.get(&field.name).map(expr::to_cel).unwrap_or(Value::Null),
                ),
            }
        }
        // Row calculations first (they see their row and the top-level answers), then the
        // groups as lists, then top-level calculations.
        for field in self.template.fields.iter().filter(|f| f.field_type == FieldType::Repeat) {
            let rows = self.with_row_calculations(field, values.get(&field.name), &scope);
            scope.add_variable_from_value(field.name.as_str(), expr::to_cel(&rows));
            values.insert(field.name.clone(), rows);
        }
        let mut calculated = BTreeMap::new();
        for name in &self.calc_order {
            let v = self.calculate(name, &scope);
            scope.add_variable_from_value(name.as_str(), expr::to_cel(&v));
            calculated.insert(name.clone(), v);
        }
        let mut issues = Vec::new();
        let items = self.render(&self.template.fields, &values, &calculated, &scope, "", env, conflicts, &mut issues);
        Evaluation { items, issues, calculated }
    }

    fn calculate(&self, name: &str, scope: &Context) -> Json {
        self.compiled
            .get(name)
            .and_then(|c| c.calculation.as_ref())
            .and_then(|p| crate::expr::execute(p, scope).ok())
            .and_then(|v| expr::from_cel(&v))
            .unwrap_or(Json::Null)
    }

    /// A group's rows with their calculated fields filled in (nested groups too).
    fn with_row_calculations(&self, group: &Field, rows: Option<&Json>, scope: &Context) -> Json {
        let Some(Json::Array(rows)) = rows else { return Json::Array(Vec::new()) };
        let order = self.row_calc_order.get(&group.name).map(Vec::as_slice).unwrap_or(&[]);
        Json::Array(
            rows.iter()
                .filter_map(|row| {
                    let mut row = row.as_object()?.clone();
                    // An unanswered field is null, in rows too: `f.area_m2` must not fail on a
                    // row where the area was left empty.
                    for f in group.fields.iter().filter(|f| f.field_type.holds_answer()) {
                        row.entry(f.name.clone()).or_insert(Json::Null);
                    }
                    let mut inner = scope.new_inner_scope();
                    bind_row(&mut inner, group, &row);
                    for sub in group.fields.iter().filter(|f| f.field_type == FieldType::Repeat) {
                        let nested = self.with_row_calculations(sub, row.get(&sub.name), &inner);
                        inner.add_variable_from_value(sub.name.as_str(), expr::to_cel(&nested));
                        row.insert(sub.name.clone(), nested);
                    }
                    for name in order {
                        let v = self.calculate(name, &inner);
                        inner.add_variable_from_value(name.as_str(), expr::to_cel(&v));
                        row.insert(name.clone(), v);
                    }
                    Some(Json::Object(row))
                })
                .collect(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn render(
        &self,
        fields: &[Field],
        values: &Map<String, Json>,
        calculated: &BTreeMap<String, Json>,
        scope: &Context,
        prefix: &str,
        env: &Env,
        conflicts: &BTreeMap<String, Vec<ConflictValue>>,
        issues: &mut Vec<Issue>,
    ) -> Vec<RenderItem> {
        let lang = env.lang.as_str();
        let mut items = Vec::new();
        for field in fields {
            let compiled = self.compiled.get(&field.name);
            let visible = match compiled.and_then(|c| c.relevant.as_ref()) {
                Some(p) => matches!(crate::expr::execute(p, scope), Ok(Value::Bool(true))),
                None => true,
            };
            if !visible {
                continue;
            }
            let path = format!("{prefix}{}", field.name);
            let value = match field.field_type {
                FieldType::Calculated => calculated.get(&field.name).or_else(|| values.get(&field.name)).cloned(),
                FieldType::Note => None,
                _ => values.get(&field.name).cloned(),
            }
            .filter(|v| !is_blank(v));
            let mut errors = Vec::new();
            let mut rows = Vec::new();
            match (&value, field.field_type) {
                (None, FieldType::Repeat) | (None, FieldType::Note) | (None, FieldType::Calculated) => {}
                (None, _) if field.required => errors.push(match lang {
                    "en" => format!("«{}» is required", field.label.text(lang)),
                    _ => format!("Chưa nhập «{}» (bắt buộc)", field.label.vi),
                }),
                (None, _) => {}
                (Some(v), _) => {
                    errors.extend(self.static_errors(field, v));
                    if errors.is_empty()
                        && let Some(p) = compiled.and_then(|c| c.constraint.as_ref())
                    {
                        let mut inner = scope.new_inner_scope();
                        inner.add_variable_from_value(VALUE, expr::to_cel(v));
                        if let Ok(Value::Bool(false)) = crate::expr::execute(p, &inner) {
                            errors.push(
                                field
                                    .constraint_message
                                    .as_ref()
                                    .map(|m| m.text(lang).to_owned())
                                    .unwrap_or_else(|| format!("«{}» không hợp lệ", field.label.text(lang))),
                            );
                        }
                    }
                }
            }
            if field.field_type == FieldType::Repeat {
                let count = value.as_ref().and_then(Json::as_array).map_or(0, Vec::len);
                if field.required && count == 0 {
                    errors.push(format!("«{}»: cần ít nhất một dòng", field.label.text(lang)));
                }
                if let Some(min) = field.min.filter(|m| (count as f64) < *m) {
                    errors.push(format!("«{}»: cần ít nhất {min} dòng", field.label.text(lang)));
                }
                if let Some(max) = field.max.filter(|m| (count as f64) > *m) {
                    errors.push(format!("«{}»: nhiều nhất {max} dòng", field.label.text(lang)));
                }
                for row in value.iter().flat_map(|v| v.as_array().into_iter().flatten()) {
                    let Some(row) = row.as_object() else { continue };
                    let id = row.get("_id").and_then(Json::as_str).unwrap_or_default().to_owned();
                    let mut inner = scope.new_inner_scope();
                    bind_row(&mut inner, field, row);
                    let row_calculated: BTreeMap<String, Json> = field
                        .fields
                        .iter()
                        .filter(|f| f.field_type == FieldType::Calculated)
                        .filter_map(|f| Some((f.name.clone(), row.get(&f.name)?.clone())))
                        .collect();
                    let row_prefix = format!("{path}/{id}/");
                    let items =
                        self.render(&field.fields, row, &row_calculated, &inner, &row_prefix, env, conflicts, issues);
                    rows.push(RenderRow { id, items });
                }
            }
            for message in &errors {
                issues.push(Issue { field: path.clone(), message: message.clone() });
            }
            let display = value.as_ref().map(|v| self.display(field, v, lang)).unwrap_or_default();
            let value_type =
                field.result_type.filter(|_| field.field_type == FieldType::Calculated).unwrap_or(field.field_type);
            let typed = value.as_ref().and_then(|v| FieldValue::from_json(value_type, v));
            items.push(RenderItem {
                conflicts: conflicts
                    .get(&path)
                    .map(|vs| {
                        vs.iter()
                            .map(|c| ConflictView {
                                display: self.display(field, &c.value, lang),
                                value: c.value.clone(),
                                by: c.info.by.clone(),
                                device: c.info.device.clone(),
                                at: c.info.at,
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                name: field.name.clone(),
                label: field.label.text(lang).to_owned(),
                hint: field.hint.as_ref().map(|h| h.text(lang).to_owned()),
                field_type: field.field_type,
                required: field.required,
                read_only: field.read_only || !field.field_type.holds_answer(),
                choices: self
                    .template
                    .choices(field)
                    .iter()
                    .map(|c| (c.value.clone(), c.label.text(lang).to_owned()))
                    .collect(),
                path,
                value,
                typed,
                display,
                errors,
                rows,
            });
        }
        items
    }

    /// Errors of a value taken on its own: shape, choices, bounds, length, pattern.
    fn static_errors(&self, field: &Field, json: &Json) -> Vec<String> {
        let ty = match field.field_type {
            FieldType::Calculated | FieldType::Repeat | FieldType::Note => return Vec::new(),
            t => t,
        };
        let Some(value) = FieldValue::from_json(ty, json) else {
            return vec![format!("giá trị không đúng kiểu {ty:?}")];
        };
        let mut errors = Vec::new();
        let in_list = |v: &str| self.template.choices(field).iter().any(|c| c.value == v);
        match &value {
            FieldValue::Text(s) => {
                let n = s.chars().count();
                if let Some(max) = field.max_length.filter(|m| n > *m) {
                    errors.push(format!("dài quá {max} ký tự"));
                }
                if let Some(min) = field.min_length.filter(|m| n < *m) {
                    errors.push(format!("cần ít nhất {min} ký tự"));
                }
                if let Some(re) = self.compiled.get(&field.name).and_then(|c| c.pattern.as_ref())
                    && !re.is_match(s)
                {
                    errors.push("không đúng định dạng".to_owned());
                }
            }
            FieldValue::Integer(i) => errors.extend(bounds(field, *i as f64)),
            FieldValue::Decimal(d) if !d.is_finite() => errors.push("không phải là số".into()),
            FieldValue::Decimal(d) => errors.extend(bounds(field, *d)),
            FieldValue::Date(s)
                if time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).is_err() =>
            {
                errors.push(format!("{s:?} không phải là ngày (YYYY-MM-DD)"));
            }
            FieldValue::Datetime(s)
                if time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_err() =>
            {
                errors.push(format!("{s:?} không phải là thời điểm (RFC 3339)"));
            }
            FieldValue::Choice(c) if !in_list(c) => errors.push(format!("{c:?} không có trong danh sách lựa chọn")),
            FieldValue::Choices(cs) => {
                if let Some(c) = cs.iter().find(|c| !in_list(c)) {
                    errors.push(format!("{c:?} không có trong danh sách lựa chọn"));
                }
            }
            FieldValue::Geopoint { lat, lon, accuracy }
                if (!(-90.0..=90.0).contains(lat)
                    || !(-180.0..=180.0).contains(lon)
                    || accuracy.is_some_and(|a| a < 0.0)) =>
            {
                errors.push("tọa độ không hợp lệ".into());
            }
            FieldValue::Attachment { sha256, .. }
                if (sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit())) =>
            {
                errors.push("tệp đính kèm không hợp lệ".into());
            }
            _ => {}
        }
        errors
    }

    /// How a value reads to a person.
    pub fn display(&self, field: &Field, json: &Json, lang: &str) -> String {
        let label_of = |v: &str| {
            self.template
                .choices(field)
                .iter()
                .find(|c| c.value == v)
                .map(|c| c.label.text(lang).to_owned())
                .unwrap_or_else(|| v.to_owned())
        };
        let ty = field.result_type.filter(|_| field.field_type == FieldType::Calculated).unwrap_or(field.field_type);
        match (FieldValue::from_json(ty, json), lang) {
            (Some(FieldValue::Choice(c)), _) => label_of(&c),
            (Some(FieldValue::Choices(cs)), _) => cs.iter().map(|c| label_of(c)).collect::<Vec<_>>().join(", "),
            (Some(FieldValue::Boolean(b)), "en") => (if b { "Yes" } else { "No" }).into(),
            (Some(FieldValue::Boolean(b)), _) => (if b { "Có" } else { "Không" }).into(),
            (Some(FieldValue::Text(s) | FieldValue::Date(s) | FieldValue::Datetime(s)), _) => s,
            (Some(FieldValue::Integer(i)), _) => i.to_string(),
            (Some(FieldValue::Decimal(d)), _) => d.to_string(),
            (Some(FieldValue::Geopoint { lat, lon, .. }), _) => format!("{lat:.6}, {lon:.6}"),
            (Some(FieldValue::Attachment { content_type, size, .. }), _) => format!("{content_type}, {size} B"),
            (None, _) if ty == FieldType::Repeat => json.as_array().map_or(0, Vec::len).to_string(),
            (None, _) => json.to_string(),
        }
    }

    /// Evaluates every expression once over sample values of the declared types; a type
    /// error there (e.g. adding a text to a number) is a publication error.
    fn check_types(&self) -> Result<(), PublishError> {
        let mut scope = self.root.new_inner_scope();
        scope.add_variable_from_value(TODAY, "2026-01-15");
        scope.add_variable_from_value(PERIOD_START, "2025-12-15");
        scope.add_variable_from_value(PERIOD_END, "2026-01-14");
        for (_, field) in self.template.walk() {
            scope.add_variable_from_value(field.name.as_str(), expr::to_cel(&self.sample(field)));
        }
        for (_, field) in self.template.walk() {
            let Some(compiled) = self.compiled.get(&field.name) else { continue };
            let mismatch = |which: &'static str, message: String| PublishError::TypeMismatch {
                field: field.name.clone(),
                which,
                message,
            };
            let mut inner = scope.new_inner_scope();
            inner.add_variable_from_value(VALUE, expr::to_cel(&self.sample(field)));
            for (which, program) in [("relevant", &compiled.relevant), ("constraint", &compiled.constraint)] {
                if let Some(p) = program {
                    match crate::expr::execute(p, &inner) {
                        Ok(Value::Bool(_)) => {}
                        Ok(other) => return Err(mismatch(which, format!("gives {other:?}, not true or false"))),
                        Err(e) if is_type_error(&e) => return Err(mismatch(which, e.to_string())),
                        Err(_) => {}
                    }
                }
            }
            if let (Some(p), Some(ty)) = (&compiled.calculation, field.result_type) {
                match crate::expr::execute(p, &inner) {
                    // No value is a calculation's answer when its inputs are missing.
                    Ok(Value::Null) => {}
                    Ok(v) => {
                        let fits = expr::from_cel(&v).and_then(|j| FieldValue::from_json(ty, &j)).is_some();
                        if !fits {
                            return Err(mismatch("calculation", format!("gives {v:?}, not a {ty:?}")));
                        }
                    }
                    Err(e) if is_type_error(&e) => return Err(mismatch("calculation", e.to_string())),
                    Err(_) => {}
                }
            }
        }
        Ok(())
    }

    /// A value of the field's type, for type checks.
    fn sample(&self, field: &Field) -> Json {
        let ty = if field.field_type == FieldType::Calculated {
            field.result_type.unwrap_or(FieldType::Text)
        } else {
            field.field_type
        };
        let first_choice = || self.template.choices(field).first().map(|c| c.value.clone()).unwrap_or_default();
        match ty {
            FieldType::Text | FieldType::Note => Json::from("mẫu"),
            FieldType::Integer | FieldType::Counter => Json::from(7),
            FieldType::Decimal => Json::from(7.5),
            FieldType::Date => Json::from("2026-01-10"),
            FieldType::Datetime => Json::from("2026-01-10T08:30:00+07:00"),
            FieldType::Boolean => Json::from(true),
            FieldType::SingleChoice => Json::from(first_choice()),
            FieldType::MultipleChoice => Json::from(vec![first_choice()]),
            FieldType::Geopoint => serde_json::json!({"lat": 21.0, "lon": 105.8, "accuracy": 5.0}),
            FieldType::Photo | FieldType::File => {
                serde_json::json!({"sha256": "0".repeat(64), "content_type": "image/jpeg", "size": 1})
            }
            FieldType::Calculated => Json::Null,
            FieldType::Repeat => {
                let mut row: Map<String, Json> =
                    field.fields.iter().map(|f| (f.name.clone(), self.sample(f))).collect();
                row.insert("_id".into(), Json::from("sample"));
                Json::Array(vec![Json::Object(row)])
            }
        }
    }
}

/// Compiled forms by (template id, version), shared across calls. A published version never
/// changes, so an entry never goes stale.
#[derive(Default)]
pub struct FormCache {
    forms: std::sync::Mutex<HashMap<(String, u32), std::sync::Arc<Form>>>,
}

impl FormCache {
    pub fn get(&self, id: &str, version: u32) -> Option<std::sync::Arc<Form>> {
        self.forms.lock().ok()?.get(&(id.to_owned(), version)).cloned()
    }

    pub fn insert(&self, form: Form) -> std::sync::Arc<Form> {
        let form = std::sync::Arc::new(form);
        if let Ok(mut forms) = self.forms.lock() {
            forms.insert((form.template.id.clone(), form.template.version), form.clone());
        }
        form
    }
}

/// The tallies and repeat groups among `fields`, which a new record or row creates up front
/// (see [`crate::record::RecordDoc::prepare`]).
fn structure(fields: &[Field]) -> (Vec<&str>, Vec<&str>) {
    let named = |t: FieldType| fields.iter().filter(|f| f.field_type == t).map(|f| f.name.as_str()).collect();
    (named(FieldType::Counter), named(FieldType::Repeat))
}

fn is_type_error(e: &ExecutionError) -> bool {
    !matches!(e, ExecutionError::DivisionByZero(_) | ExecutionError::RemainderByZero(_) | ExecutionError::Overflow(..))
}

fn bind_row(scope: &mut Context, group: &Field, row: &Map<String, Json>) {
    for f in &group.fields {
        scope.add_variable_from_value(f.name.as_str(), row.get(&f.name).map(expr::to_cel).unwrap_or(Value::Null));
    }
}

fn bounds(field: &Field, x: f64) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(min) = field.min.filter(|m| x < *m) {
        errors.push(format!("phải từ {min} trở lên"));
    }
    if let Some(max) = field.max.filter(|m| x > *m) {
        errors.push(format!("phải không quá {max}"));
    }
    errors
}

fn is_blank(v: &Json) -> bool {
    match v {
        Json::Null => true,
        Json::String(s) => s.trim().is_empty(),
        Json::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn expressions(field: &Field) -> Vec<(&'static str, &str)> {
    [("relevant", &field.relevant), ("constraint", &field.constraint), ("calculation", &field.calculation)]
        .into_iter()
        .filter_map(|(which, e)| e.as_deref().map(|e| (which, e)))
        .collect()
}

fn compile_expr(
    field: &Field,
    which: &'static str,
    source: &str,
    visible: &HashSet<&str>,
) -> Result<Program, PublishError> {
    let program = expr::compile(source).map_err(|message| PublishError::InvalidExpression {
        field: field.name.clone(),
        which,
        message,
    })?;
    let references = program.references();
    let bound = expr::bound_names(source);
    for name in references.variables() {
        let builtin = [TODAY, PERIOD_START, PERIOD_END].contains(&name) || (name == VALUE && which == "constraint");
        if !builtin && !visible.contains(name) && !bound.contains(name) {
            return Err(PublishError::UnknownReference { field: field.name.clone(), which, name: name.to_owned() });
        }
    }
    for name in references.functions() {
        let operator = name.starts_with('_') || name.starts_with('@') || name == "!_";
        if !operator && !expr::FUNCTIONS.contains(&name) {
            return Err(PublishError::UnknownFunction { field: field.name.clone(), which, name: name.to_owned() });
        }
    }
    Ok(program)
}

/// The calculated fields among `fields` in an order where each comes after those it uses.
fn calculation_order(fields: &[Field]) -> Result<Vec<String>, PublishError> {
    let calcs: HashMap<&str, &Field> =
        fields.iter().filter(|f| f.field_type == FieldType::Calculated).map(|f| (f.name.as_str(), f)).collect();
    let deps = |f: &Field| -> Vec<String> {
        let source = f.calculation.as_deref().unwrap_or_default();
        let bound = expr::bound_names(source);
        expr::compile(source)
            .map(|p| {
                p.references()
                    .variables()
                    .into_iter()
                    .filter(|v| calcs.contains_key(v) && !bound.contains(*v))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut order = Vec::new();
    let mut state: HashMap<String, u8> = HashMap::new(); // 1 = visiting, 2 = done
    fn visit(
        name: &str,
        calcs: &HashMap<&str, &Field>,
        deps: &dyn Fn(&Field) -> Vec<String>,
        state: &mut HashMap<String, u8>,
        stack: &mut Vec<String>,
        order: &mut Vec<String>,
    ) -> Result<(), PublishError> {
        match state.get(name) {
            Some(2) => return Ok(()),
            Some(1) => {
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(name.to_owned());
                return Err(PublishError::CalculationCycle(cycle));
            }
            _ => {}
        }
        state.insert(name.to_owned(), 1);
        stack.push(name.to_owned());
        if let Some(field) = calcs.get(name) {
            for dep in deps(field) {
                visit(&dep, calcs, deps, state, stack, order)?;
            }
        }
        stack.pop();
        state.insert(name.to_owned(), 2);
        order.push(name.to_owned());
        Ok(())
    }
    for field in fields.iter().filter(|f| f.field_type == FieldType::Calculated) {
        visit(&field.name, &calcs, &deps, &mut state, &mut Vec::new(), &mut order)?;
    }
    Ok(order)
}

/// Checks that need no expression evaluation.
fn check_structure(t: &Template) -> Result<(), PublishError> {
    if !is_identifier(&t.id) {
        return Err(PublishError::BadId(t.id.clone()));
    }
    if t.version == 0 {
        return Err(PublishError::BadVersion);
    }
    if t.fields.is_empty() {
        return Err(PublishError::NoFields);
    }
    match (&t.period, t.kind) {
        (Some(p), TemplateKind::PeriodicReport) => p.check()?,
        (None, TemplateKind::PeriodicReport) | (Some(_), _) => return Err(PublishError::PeriodMismatch),
        (None, _) => {}
    }
    crate::indicators::check_local(t).map_err(PublishError::BadIndicator)?;
    crate::reminders::check_local(t).map_err(PublishError::BadReminder)?;
    let mut seen = HashSet::new();
    for (_, f) in t.walk() {
        if !is_identifier(&f.name) {
            return Err(PublishError::BadFieldName(f.name.clone()));
        }
        if expr::RESERVED.contains(&f.name.as_str()) {
            return Err(PublishError::ReservedName(f.name.clone()));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(PublishError::DuplicateField(f.name.clone()));
        }
        let misplaced = |attribute: &'static str| PublishError::MisplacedAttribute {
            field: f.name.clone(),
            attribute,
            field_type: f.field_type,
        };
        // A calculated field may give one of its own choices: its value is shown by label.
        let answer_type = match f.field_type {
            FieldType::Calculated => f.result_type.unwrap_or(FieldType::Text),
            other => other,
        };
        if answer_type.is_choice() {
            let choices: &[Choice] = match &f.choices {
                None => return Err(PublishError::NoChoices(f.name.clone())),
                Some(ChoicesRef::Inline(c)) => c,
                Some(ChoicesRef::Named(list)) => {
                    t.choice_lists.get(list).ok_or_else(|| PublishError::MissingChoiceList {
                        field: f.name.clone(),
                        list: list.trim_start_matches(SHARED_PREFIX).to_owned(),
                    })?
                }
            };
            if choices.is_empty() {
                return Err(PublishError::NoChoices(f.name.clone()));
            }
            let mut values = HashSet::new();
            if let Some(c) = choices.iter().find(|c| !values.insert(c.value.as_str())) {
                return Err(PublishError::DuplicateChoice { field: f.name.clone(), value: c.value.clone() });
            }
        } else if f.choices.is_some() {
            return Err(misplaced("choices"));
        }
        if (f.min.is_some() || f.max.is_some()) && !(f.field_type.is_number() || f.field_type == FieldType::Repeat) {
            return Err(misplaced("min/max"));
        }
        if let (Some(min), Some(max)) = (f.min, f.max)
            && min > max
        {
            return Err(PublishError::MinAboveMax(f.name.clone()));
        }
        if (f.min_length.is_some() || f.max_length.is_some() || f.pattern.is_some()) && f.field_type != FieldType::Text
        {
            return Err(misplaced("min_length/max_length/pattern"));
        }
        if let (Some(min), Some(max)) = (f.min_length, f.max_length)
            && min > max
        {
            return Err(PublishError::MinAboveMax(f.name.clone()));
        }
        match f.field_type {
            FieldType::Calculated if f.calculation.is_none() || f.result_type.is_none() => {
                return Err(PublishError::IncompleteCalculation(f.name.clone()));
            }
            FieldType::Calculated
                if f.result_type.is_some_and(|r| !r.holds_answer() || r == FieldType::MultipleChoice) =>
            {
                return Err(misplaced("result_type"));
            }
            FieldType::Calculated => {}
            _ if f.calculation.is_some() => return Err(misplaced("calculation")),
            _ => {}
        }
        if f.field_type == FieldType::Repeat && f.fields.is_empty() {
            return Err(PublishError::EmptyRepeat(f.name.clone()));
        }
        if f.field_type != FieldType::Repeat && !f.fields.is_empty() {
            return Err(misplaced("fields"));
        }
        if f.field_type == FieldType::Note && (f.required || f.constraint.is_some()) {
            return Err(misplaced("required/constraint"));
        }
        if let Some(default) = &f.default {
            if !f.field_type.holds_answer() {
                return Err(misplaced("default"));
            }
            if FieldValue::from_json(f.field_type, default).is_none() {
                return Err(PublishError::BadDefault {
                    field: f.name.clone(),
                    message: format!("{default} is not a {:?} value", f.field_type),
                });
            }
        }
    }
    Ok(())
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}
