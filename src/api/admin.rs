//! The admin API under `/api/v1`: read apps, analyses and events; start, pause, resume, promote
//! and abort releases; set a weight by hand; reload the config. One handler per call.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use axum::Json;

use super::extract::{Admin, AppName, Body, Reader};
use super::requests::{
    Action, DeployBody, EventsQuery, NoBody, ReasonBody, ReloadBody, StartBody, WeightBody,
};
use super::views::{
    AnalysisView, AppDetail, AppList, AppView, DeployAnswer, EventList, EventView, ReloadAnswer,
};
use super::ApiError;
use crate::controller::{Controller, MAX_EVENTS};
use crate::rollout::Event;

/// Events of one app kept in an app's detail view.
const DETAIL_EVENTS: usize = 20;
/// Events `GET /api/v1/events` answers without a `limit`.
const DEFAULT_EVENTS: usize = 100;

/// `GET /api/v1/apps`.
pub async fn list_apps(Reader(controller): Reader) -> Json<AppList> {
    let config = controller.config();
    let published = controller.published();
    let traefik = controller.traefik_check();
    let apps = config
        .apps
        .values()
        .filter_map(|app| {
            let last = controller.analyses(&app.name).into_iter().next();
            let state = published.apps.get(&app.name)?;
            let dry = published.dry_runs.get(&app.name);
            let view = AppView::new(app, state, dry, last.as_ref(), &traefik);
            Some(with_runs(&controller, view))
        })
        .collect();
    Json(AppList { apps })
}

/// `GET /api/v1/apps/{app}`.
pub async fn get_app(
    Reader(controller): Reader,
    AppName(name): AppName,
) -> Result<Json<AppDetail>, ApiError> {
    detail(&controller, &name).map(Json)
}

/// `GET /api/v1/events?app=NAME&limit=N`: the newest `limit` events, oldest first.
pub async fn list_events(
    Reader(controller): Reader,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    if let Some(app) = &q.app {
        if !controller.config().apps.contains_key(app) {
            return Err(ApiError::UnknownApp(app.clone()));
        }
    }
    let limit = q.limit.unwrap_or(DEFAULT_EVENTS).min(MAX_EVENTS);
    let published = controller.published();
    let events = newest(&published.events, limit, |e| {
        q.app.as_ref().is_none_or(|a| &e.app == a)
    });
    Ok(Json(EventList { events }))
}

/// `POST /api/v1/apps/{app}/start` with `{"version": "LABEL"}`.
pub async fn start(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(body): Body<StartBody>,
) -> Result<Json<AppDetail>, ApiError> {
    act(&c, &app, Action::Start(body)).await
}

/// `POST /api/v1/apps/{app}/deploy` with `{"image": "REFERENCE"}`: a Swarm-managed app's
/// service gets the image; `202`, and the release starts once its tasks run it.
pub async fn deploy(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(body): Body<DeployBody>,
) -> Result<(axum::http::StatusCode, Json<DeployAnswer>), ApiError> {
    let done = c.deploy(&app, &body.image).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(DeployAnswer {
            app,
            service: done.service,
            image: done.image,
            version: done.version,
        }),
    ))
}

/// `POST /api/v1/apps/{app}/pause`, body optional: `{"reason": "..."}`.
pub async fn pause(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(body): Body<ReasonBody>,
) -> Result<Json<AppDetail>, ApiError> {
    act(&c, &app, Action::Pause(body)).await
}

/// `POST /api/v1/apps/{app}/resume`.
pub async fn resume(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(NoBody {}): Body<NoBody>,
) -> Result<Json<AppDetail>, ApiError> {
    act(&c, &app, Action::Resume).await
}

/// `POST /api/v1/apps/{app}/promote`.
pub async fn promote(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(NoBody {}): Body<NoBody>,
) -> Result<Json<AppDetail>, ApiError> {
    act(&c, &app, Action::Promote).await
}

/// `POST /api/v1/apps/{app}/abort`, body optional: `{"reason": "..."}`.
pub async fn abort(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(body): Body<ReasonBody>,
) -> Result<Json<AppDetail>, ApiError> {
    act(&c, &app, Action::Abort(body)).await
}

/// `PUT /api/v1/apps/{app}/weight` with `{"weight": 0..=100}`.
pub async fn set_weight(
    Admin(c): Admin,
    AppName(app): AppName,
    Body(WeightBody { weight }): Body<WeightBody>,
) -> Result<Json<AppDetail>, ApiError> {
    c.set_weight(&app, weight).await?;
    detail(&c, &app).map(Json)
}

/// `POST /api/v1/reload` (body optional: `{"force": true}`): reads the config file again and
/// applies it; a config with errors, or one that needs a restart, changes nothing.
pub async fn reload(
    Admin(c): Admin,
    Body(body): Body<ReloadBody>,
) -> Result<Json<ReloadAnswer>, ApiError> {
    let report = c.reload_from_file(body.force.unwrap_or(false)).await?;
    Ok(Json(ReloadAnswer {
        reloaded: true,
        report: report.into(),
    }))
}

async fn act(c: &Controller, app: &str, action: Action) -> Result<Json<AppDetail>, ApiError> {
    c.command(app, action.into_input()).await?;
    detail(c, app).map(Json)
}

/// An app's detail view as published now (a change is published before it is answered), from
/// the config in force; a dry-run release is shown beside the served state.
fn detail(c: &Controller, app: &str) -> Result<AppDetail, ApiError> {
    let config = c.config();
    let published = c.published();
    let served = published
        .apps
        .get(app)
        .ok_or_else(|| ApiError::UnknownApp(app.to_string()))?;
    let dry = published.dry_runs.get(app);
    let app_config = config
        .apps
        .get(app)
        .ok_or_else(|| ApiError::UnknownApp(app.to_string()))?;
    let analyses = c.analyses(app);
    let events = newest(&published.events, DETAIL_EVENTS, |e| e.app == app);
    Ok(AppDetail {
        app: with_runs(
            c,
            AppView::new(
                app_config,
                served,
                dry,
                analyses.first(),
                &c.traefik_check(),
            ),
        ),
        analyses: analyses.iter().map(AnalysisView::from).collect(),
        events,
    })
}

/// `view` with the versions its slots' tasks run (Swarm-managed apps).
fn with_runs(c: &Controller, mut view: AppView) -> AppView {
    let runs = c.slots_run(&view.name);
    view.stable.runs = runs.get(&view.stable.slot).cloned();
    view.canary.runs = runs.get(&view.canary.slot).cloned();
    view
}

/// The newest `limit` events that `keep` keeps, oldest first.
fn newest(events: &[Event], limit: usize, keep: impl Fn(&Event) -> bool) -> Vec<EventView> {
    let mut out: Vec<EventView> = events
        .iter()
        .rev()
        .filter(|e| keep(e))
        .take(limit)
        .map(EventView::from)
        .collect();
    out.reverse();
    out
}
