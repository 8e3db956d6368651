//! The names of the Traefik objects generated for an app, in one place: the provider renders
//! them, the metrics sources look figures up by them and the config refuses two apps whose names
//! collide. Objects are named by role, never by slot, so a promotion changes no name.

/// The suffix Traefik gives, in its metrics, to objects of the HTTP provider.
pub const HTTP_PROVIDER: &str = "@http";

/// The Traefik names of one app's routers and services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppNames<'a> {
    app: &'a str,
}

impl<'a> AppNames<'a> {
    pub fn of(app: &'a str) -> Self {
        AppNames { app }
    }

    /// The main router, on the app's rule.
    pub fn router(&self) -> &'a str {
        self.app
    }

    /// The weighted service that splits traffic between the two roles.
    pub fn service(&self) -> &'a str {
        self.app
    }

    /// The load balancer over the stable slot's servers.
    pub fn stable(&self) -> String {
        format!("{}-stable", self.app)
    }

    /// The load balancer over the canary slot's servers.
    pub fn canary(&self) -> String {
        format!("{}-canary", self.app)
    }

    /// The router that sends requests carrying the pin header to the canary.
    pub fn header_router(&self) -> String {
        format!("{}-canary-header", self.app)
    }

    /// The router that sends requests carrying the pin cookie to the canary.
    pub fn cookie_router(&self) -> String {
        format!("{}-canary-cookie", self.app)
    }

    /// The stable and canary services as Traefik's metrics label them (`api-stable@http`).
    pub fn metrics_services(&self) -> (String, String) {
        (
            format!("{}{HTTP_PROVIDER}", self.stable()),
            format!("{}{HTTP_PROVIDER}", self.canary()),
        )
    }

    /// The routers the app generates: the main one and the pin routers (the cookie router only
    /// with a pin cookie).
    pub fn routers(&self, pin_cookie: bool) -> Vec<String> {
        let mut names = vec![self.router().to_string(), self.header_router()];
        if pin_cookie {
            names.push(self.cookie_router());
        }
        names
    }

    /// The services the app generates: the weighted one and the two load balancers.
    pub fn services(&self) -> [String; 3] {
        [self.service().to_string(), self.stable(), self.canary()]
    }

    /// Every router and service name the app generates; the cookie router only with a pin
    /// cookie.
    pub fn all(&self, pin_cookie: bool) -> Vec<String> {
        let mut names = vec![
            self.router().to_string(),
            self.stable(),
            self.canary(),
            self.header_router(),
        ];
        if pin_cookie {
            names.push(self.cookie_router());
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_by_role_and_metrics_names_are_provider_qualified() {
        let n = AppNames::of("api");
        assert_eq!(
            n.all(true),
            [
                "api",
                "api-stable",
                "api-canary",
                "api-canary-header",
                "api-canary-cookie"
            ]
        );
        assert_eq!(n.all(false).len(), 4);
        assert_eq!(n.service(), n.router());
        assert_eq!(
            n.metrics_services(),
            ("api-stable@http".to_string(), "api-canary@http".to_string())
        );
    }
}
