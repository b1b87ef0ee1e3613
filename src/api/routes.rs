//! The one route table. The accept loop looks each request up here once (see `server`): the
//! match routes the request (each handler's filter asks [`at`] for its own route) and names the
//! route in metrics and logs, so that the two can never disagree, and ids never become labels.

use warp::http::Method;
use warp::{Filter, Rejection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Health,
    Ready,
    Metrics,
    Execute,
    ExecuteAsync,
    ExecuteWs,
    Execution,
    Events,
    Cancel,
    Batch,
    BatchRecords,
    Languages,
    Workers,
    Executions,
    Queue,
    OpenApi,
    Docs,
    DocsAsset,
    /// The Judge0 CE API, under `/judge0`.
    Judge0(Judge0),
    /// The Piston v2 API, under `/api/v2`.
    Piston(Piston),
    /// MCP's streamable HTTP transport (`api::mcp`).
    Mcp,
    /// The web console (`api::console`): the playground, the live view, their files.
    Playground,
    Console,
    ConsoleAsset,
}

/// The Piston API's endpoints (`api::piston`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piston {
    Runtimes,
    Execute,
    Connect,
}

/// The Judge0 API's endpoints (`api::judge0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge0 {
    Create,
    Index,
    BatchCreate,
    BatchShow,
    Show,
    Delete,
    Languages,
    AllLanguages,
    Language,
    Statuses,
    SystemInfo,
    ConfigInfo,
    About,
    Version,
    Workers,
    Authenticate,
    Authorize,
}

/// One row of the table: a method and a path template whose `{name}` segments match any one
/// segment.
pub struct Entry {
    pub route: Route,
    pub method: Method,
    pub template: &'static str,
}

const fn entry(route: Route, method: Method, template: &'static str) -> Entry {
    Entry {
        route,
        method,
        template,
    }
}

pub const TABLE: &[Entry] = &[
    entry(Route::Health, Method::GET, "/health"),
    entry(Route::Ready, Method::GET, "/ready"),
    entry(Route::Metrics, Method::GET, "/metrics"),
    entry(Route::Execute, Method::POST, "/execute"),
    entry(Route::ExecuteAsync, Method::POST, "/execute/async"),
    entry(Route::ExecuteWs, Method::GET, "/execute/ws"),
    entry(Route::Execution, Method::GET, "/execution/{id}"),
    entry(Route::Cancel, Method::DELETE, "/execution/{id}"),
    entry(Route::Events, Method::GET, "/execution/{id}/events"),
    entry(Route::Batch, Method::POST, "/batch"),
    entry(Route::BatchRecords, Method::GET, "/batch/{id}"),
    entry(Route::Languages, Method::GET, "/languages"),
    entry(Route::Workers, Method::GET, "/workers"),
    entry(Route::Executions, Method::GET, "/executions"),
    entry(Route::Queue, Method::GET, "/queue"),
    entry(Route::OpenApi, Method::GET, "/openapi.json"),
    entry(Route::Docs, Method::GET, "/docs"),
    entry(Route::DocsAsset, Method::GET, "/docs/{asset}"),
    entry(Route::Playground, Method::GET, "/"),
    entry(Route::Console, Method::GET, "/console"),
    entry(Route::ConsoleAsset, Method::GET, "/console/assets/{name}"),
    // Before `/judge0/submissions/{token}`: the first row that fits wins.
    judge0(
        Judge0::BatchCreate,
        Method::POST,
        "/judge0/submissions/batch",
    ),
    judge0(Judge0::BatchShow, Method::GET, "/judge0/submissions/batch"),
    judge0(Judge0::Create, Method::POST, "/judge0/submissions"),
    judge0(Judge0::Index, Method::GET, "/judge0/submissions"),
    judge0(Judge0::Show, Method::GET, "/judge0/submissions/{token}"),
    judge0(
        Judge0::Delete,
        Method::DELETE,
        "/judge0/submissions/{token}",
    ),
    judge0(Judge0::AllLanguages, Method::GET, "/judge0/languages/all"),
    judge0(Judge0::Languages, Method::GET, "/judge0/languages"),
    judge0(Judge0::Language, Method::GET, "/judge0/languages/{id}"),
    judge0(Judge0::Statuses, Method::GET, "/judge0/statuses"),
    judge0(Judge0::SystemInfo, Method::GET, "/judge0/system_info"),
    judge0(Judge0::ConfigInfo, Method::GET, "/judge0/config_info"),
    judge0(Judge0::About, Method::GET, "/judge0/about"),
    judge0(Judge0::Version, Method::GET, "/judge0/version"),
    judge0(Judge0::Workers, Method::GET, "/judge0/workers"),
    judge0(Judge0::Authenticate, Method::POST, "/judge0/authenticate"),
    judge0(Judge0::Authorize, Method::POST, "/judge0/authorize"),
    piston(Piston::Runtimes, Method::GET, "/api/v2/runtimes"),
    piston(Piston::Execute, Method::POST, "/api/v2/execute"),
    piston(Piston::Connect, Method::GET, "/api/v2/connect"),
    // Stateless: every message is a POST; GET (a server-sent stream) and DELETE (a session's
    // end) get 405, as the transport allows.
    entry(Route::Mcp, Method::POST, "/mcp"),
];

const fn piston(endpoint: Piston, method: Method, template: &'static str) -> Entry {
    entry(Route::Piston(endpoint), method, template)
}

const fn judge0(endpoint: Judge0, method: Method, template: &'static str) -> Entry {
    entry(Route::Judge0(endpoint), method, template)
}

/// What the table says about a request.
#[derive(Debug, Clone)]
pub enum Lookup {
    Found {
        route: Route,
        template: &'static str,
        /// The `{name}` segments, in order.
        params: Vec<String>,
    },
    /// The path is a route's, the method is not: 405.
    WrongMethod {
        template: &'static str,
    },
    Unknown,
}

impl Lookup {
    /// HEAD is answered as GET (hyper sends no body for it).
    pub fn of(method: &Method, path: &str) -> Lookup {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        let mut wrong_method = None;
        for entry in TABLE {
            let Some(params) = matches(entry.template, path) else {
                continue;
            };
            if entry.method == method {
                return Lookup::Found {
                    route: entry.route,
                    template: entry.template,
                    params,
                };
            }
            wrong_method.get_or_insert(entry.template);
        }
        match wrong_method {
            Some(template) => Lookup::WrongMethod { template },
            None => Lookup::Unknown,
        }
    }

    /// The route as a metric label: its template, or `other`.
    pub fn label(&self) -> &'static str {
        match self {
            Lookup::Found { template, .. } | Lookup::WrongMethod { template } => template,
            Lookup::Unknown => "other",
        }
    }
}

/// The path's parameters when it fits the template.
fn matches(template: &str, path: &str) -> Option<Vec<String>> {
    let mut expected = template.split('/');
    let mut given = path.split('/');
    let mut params = Vec::new();
    loop {
        match (expected.next(), given.next()) {
            (None, None) => return Some(params),
            (Some(t), Some(p)) if t.starts_with('{') && !p.is_empty() => params.push(p.into()),
            (Some(t), Some(p)) if t == p => {}
            _ => return None,
        }
    }
}

/// The request's method is not one its path takes.
#[derive(Debug)]
pub struct WrongMethod;
impl warp::reject::Reject for WrongMethod {}

/// Passes the requests the table matched to `route`, with the route's parameters.
pub fn at(
    route: Route,
) -> impl Filter<Extract = (Vec<String>,), Error = Rejection> + Clone + Send + Sync + 'static {
    warp::ext::get::<Lookup>().and_then(move |lookup: Lookup| async move {
        match lookup {
            Lookup::Found {
                route: found,
                params,
                ..
            } if found == route => Ok(params),
            Lookup::WrongMethod { .. } => Err(warp::reject::custom(WrongMethod)),
            _ => Err(warp::reject::not_found()),
        }
    })
}

/// [`at`] for a route with one parameter (an id), which the handler gets.
pub fn with_param(
    route: Route,
) -> impl Filter<Extract = (String,), Error = Rejection> + Clone + Send + Sync + 'static {
    at(route).map(|mut params: Vec<String>| params.swap_remove(0))
}

/// [`at`] for a route without parameters.
pub fn plain(
    route: Route,
) -> impl Filter<Extract = (), Error = Rejection> + Clone + Send + Sync + 'static {
    at(route).map(drop).untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_templates_and_parameters() {
        let id = "0e286953-fa59-4652-8583-aa28e9f1ab75";
        let found = Lookup::of(&Method::GET, &format!("/execution/{id}"));
        assert_eq!(found.label(), "/execution/{id}");
        assert!(
            matches!(found, Lookup::Found { route: Route::Execution, ref params, .. } if params == &[id])
        );
        let cancel = Lookup::of(&Method::DELETE, &format!("/execution/{id}"));
        assert!(matches!(
            cancel,
            Lookup::Found {
                route: Route::Cancel,
                ..
            }
        ));
    }

    #[test]
    fn the_method_and_every_segment_count() {
        assert_eq!(Lookup::of(&Method::POST, "/execute").label(), "/execute");
        assert!(matches!(
            Lookup::of(&Method::HEAD, "/docs"),
            Lookup::Found {
                route: Route::Docs,
                ..
            }
        ));
        assert!(matches!(
            Lookup::of(&Method::GET, "/execute"),
            Lookup::WrongMethod {
                template: "/execute"
            }
        ));
        for path in [
            "/wp-admin",
            "/execution/",
            "/execution/a/b",
            "/execute/",
            "",
        ] {
            assert!(
                matches!(Lookup::of(&Method::GET, path), Lookup::Unknown),
                "{path}"
            );
        }
        assert_eq!(Lookup::of(&Method::GET, "/wp-admin").label(), "other");
    }

    #[test]
    fn judge0s_batch_route_wins_over_its_token_route() {
        let batch = Lookup::of(&Method::GET, "/judge0/submissions/batch");
        assert!(matches!(
            batch,
            Lookup::Found {
                route: Route::Judge0(Judge0::BatchShow),
                ..
            }
        ));
        let show = Lookup::of(&Method::GET, "/judge0/submissions/4a1b");
        assert!(matches!(
            show,
            Lookup::Found {
                route: Route::Judge0(Judge0::Show),
                ..
            }
        ));
        assert_eq!(show.label(), "/judge0/submissions/{token}");
    }

    #[test]
    fn no_two_rows_claim_the_same_request() {
        for (i, a) in TABLE.iter().enumerate() {
            for b in &TABLE[i + 1..] {
                assert!(
                    a.template != b.template || a.method != b.method,
                    "{} {} twice",
                    a.method,
                    a.template
                );
            }
        }
    }
}
