//! The HTTP API's routes, read from template.yaml's `HttpApi` events exactly as API Gateway gets
//! them, and matched as API Gateway matches them: the route with the most literal segments wins,
//! a path with or without its trailing slash is a different route, and an unknown route is 404.

use std::collections::BTreeSet;

/// One `METHOD /path/{param}` route of one function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub method: String,
    pub path: String,
    /// The function's package directory under `functions/` (its `CodeUri`).
    pub function: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name+}`, API Gateway's greedy variable: the last segment, matching one or more
    /// segments (the rest of the path, slashes included).
    Greedy(String),
}

/// A request matched to its route, with the path parameters API Gateway would pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched<'r> {
    pub route: &'r Route,
    pub params: Vec<(String, String)>,
}

impl Route {
    fn new(method: &str, path: &str, function: &str) -> Route {
        let segments = split(path)
            .map(
                |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => match name.strip_suffix('+') {
                        Some(greedy) => Segment::Greedy(greedy.to_string()),
                        None => Segment::Param(name.to_string()),
                    },
                    None => Segment::Literal(s.to_string()),
                },
            )
            .collect();
        Route {
            method: method.to_ascii_uppercase(),
            path: path.to_string(),
            function: function.to_string(),
            segments,
        }
    }

    /// `GET /api/projects/{project_id}/feature_flags/`, as API Gateway writes `routeKey`.
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn params(&self, path: &str) -> Option<Vec<(String, String)>> {
        let parts: Vec<&str> = split(path).collect();
        let greedy = matches!(self.segments.last(), Some(Segment::Greedy(_)));
        let fits = if greedy {
            parts.len() >= self.segments.len()
        } else {
            parts.len() == self.segments.len()
        };
        if !fits {
            return None;
        }
        let mut params = Vec::new();
        for (i, (segment, part)) in self.segments.iter().zip(&parts).enumerate() {
            let part = *part;
            match segment {
                // The rest of the path as API Gateway passes it: not empty, decoded.
                Segment::Greedy(name) => {
                    let rest = parts[i..].join("/");
                    if rest.is_empty() {
                        return None;
                    }
                    params.push((name.clone(), decode(&rest)));
                }
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                // A parameter matches one non-empty segment; API Gateway passes it decoded.
                Segment::Param(_) if part.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), decode(part))),
            }
        }
        Some(params)
    }

    /// Literal segments outrank parameters, earliest first (`/feature_flags/activity` beats
    /// `/feature_flags/{id}`); a greedy variable counts as a parameter.
    fn specificity(&self) -> Vec<bool> {
        self.segments
            .iter()
            .map(|s| matches!(s, Segment::Literal(_)))
            .collect()
    }
}

/// Segments after the leading slash; a trailing slash leaves a last empty segment, so `/a/`
/// and `/a` stay different routes as they are on API Gateway.
fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

fn decode(part: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", part.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| part.to_string())
}

#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
    /// Every function of the template, HTTP or not (the stream worker has no route).
    pub functions: BTreeSet<String>,
}

impl Routes {
    /// Every `AWS::Serverless::Function` and its `HttpApi` events.
    pub fn from_template(template: &str) -> Result<Routes, String> {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(template).map_err(|e| format!("template.yaml: {e}"))?;
        let resources = doc["Resources"]
            .as_mapping()
            .ok_or("template.yaml has no Resources")?;
        let mut table = Routes::default();
        for (_, resource) in resources {
            if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
                continue;
            }
            let code_uri = resource["Properties"]["CodeUri"]
                .as_str()
                .ok_or("a function without CodeUri")?;
            let function = code_uri.trim_end_matches('/').rsplit('/').next();
            let function = function.unwrap_or(code_uri).to_string();
            let events = resource["Properties"]["Events"].as_mapping();
            for (_, event) in events.into_iter().flatten() {
                if event["Type"].as_str() != Some("HttpApi") {
                    continue;
                }
                let props = &event["Properties"];
                let (Some(path), Some(method)) = (props["Path"].as_str(), props["Method"].as_str())
                else {
                    return Err(format!(
                        "{function}: an HttpApi event without Path or Method"
                    ));
                };
                table.routes.push(Route::new(method, path, &function));
            }
            table.functions.insert(function);
        }
        Ok(table)
    }

    /// The route API Gateway would pick for this method and raw path.
    pub fn find(&self, method: &str, path: &str) -> Option<Matched<'_>> {
        self.routes
            .iter()
            .filter(|r| r.method == method || r.method == "ANY")
            .filter_map(|route| Some((route, route.params(path)?)))
            .max_by(|(a, _), (b, _)| a.specificity().cmp(&b.specificity()))
            .map(|(route, params)| Matched { route, params })
    }

    pub fn count(&self) -> usize {
        self.routes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../template.yaml");

    fn routes() -> Routes {
        Routes::from_template(TEMPLATE).unwrap()
    }

    #[test]
    fn reads_every_function_and_route_of_the_template() {
        let routes = routes();
        assert!(routes.count() > 40, "{} routes", routes.count());
        for f in ["feature-flags", "flags", "api-schema", "cohort-jobs"] {
            assert!(routes.functions.contains(f), "{f} missing");
        }
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let routes = routes();
        let m = routes
            .find("GET", "/api/projects/7/feature_flags/activity/")
            .unwrap();
        assert_eq!(m.route.function, "activity");
        let m = routes
            .find("GET", "/api/projects/7/feature_flags/12/")
            .unwrap();
        assert_eq!(m.route.function, "feature-flags");
        assert_eq!(
            m.params,
            vec![
                ("project_id".into(), "7".into()),
                ("id".into(), "12".into())
            ]
        );
        let m = routes
            .find("GET", "/api/projects/7/feature_flags/local_evaluation")
            .unwrap();
        assert_eq!(m.route.function, "flags");
    }

    #[test]
    fn parameters_are_decoded_and_unknown_routes_miss() {
        let routes = routes();
        let m = routes
            .find("GET", "/api/projects/%40current/feature_flags/")
            .unwrap();
        assert_eq!(m.params, vec![("project_id".into(), "@current".into())]);
        assert!(routes.find("GET", "/nope").is_none());
        assert!(
            routes
                .find("GET", "/api/projects//feature_flags/")
                .is_none()
        );
        assert!(routes.find("BREW", "/flags/").is_none());
    }

    #[test]
    fn greedy_variables_take_the_rest_of_the_path_and_the_root_is_a_route() {
        let routes = routes();
        let m = routes.find("GET", "/").unwrap();
        assert_eq!((m.route.function.as_str(), m.params.len()), ("console", 0));
        let m = routes.find("GET", "/project/1/feature-flags/12").unwrap();
        assert_eq!(m.route.function, "console");
        assert_eq!(
            m.params,
            vec![("proxy".into(), "1/feature-flags/12".into())]
        );
        let m = routes.find("GET", "/console/app-X1.js").unwrap();
        assert_eq!(m.params, vec![("proxy".into(), "app-X1.js".into())]);
        assert!(routes.find("GET", "/project/").is_none());
        assert!(routes.find("GET", "/project").is_none());
        assert!(routes.find("POST", "/project/1/feature_flags").is_none());
        // A longer literal route still wins over a greedy one.
        let m = routes
            .find("GET", "/api/projects/7/feature_flags/12/")
            .unwrap();
        assert_eq!(m.route.function, "feature-flags");
    }
}
