//! Service templates for `vault secret create NAME --template T`: the keys a
//! service's client libraries read, which of them are secret (hidden input),
//! and defaults where a service has a conventional one.

pub(crate) struct Template {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) keys: &'static [Key],
}

pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) secret: bool,
    pub(crate) default: Option<&'static str>,
}

const fn plain(name: &'static str, default: Option<&'static str>) -> Key {
    Key {
        name,
        secret: false,
        default,
    }
}

const fn secret(name: &'static str) -> Key {
    Key {
        name,
        secret: true,
        default: None,
    }
}

pub(crate) const TEMPLATES: &[Template] = &[
    Template {
        name: "anthropic",
        description: "Anthropic API",
        keys: &[secret("ANTHROPIC_API_KEY")],
    },
    Template {
        name: "aws",
        description: "Amazon Web Services access key",
        keys: &[
            plain("AWS_ACCESS_KEY_ID", None),
            secret("AWS_SECRET_ACCESS_KEY"),
            plain("AWS_REGION", Some("us-east-1")),
        ],
    },
    Template {
        name: "azure",
        description: "Azure service principal",
        keys: &[
            plain("AZURE_CLIENT_ID", None),
            secret("AZURE_CLIENT_SECRET"),
            plain("AZURE_TENANT_ID", None),
            plain("AZURE_SUBSCRIPTION_ID", None),
        ],
    },
    Template {
        name: "gcp",
        description: "Google Cloud service account: the whole JSON key as one value (pipe it on stdin); `vault run --as-file GOOGLE_APPLICATION_CREDENTIALS` gives it to tools as a file",
        keys: &[secret("GOOGLE_APPLICATION_CREDENTIALS")],
    },
    Template {
        name: "github",
        description: "GitHub token",
        keys: &[secret("GITHUB_TOKEN")],
    },
    Template {
        name: "huggingface",
        description: "Hugging Face Hub",
        keys: &[secret("HF_TOKEN")],
    },
    Template {
        name: "mongodb",
        description: "MongoDB connection string",
        keys: &[secret("MONGODB_URI")],
    },
    Template {
        name: "mysql",
        description: "MySQL / MariaDB",
        keys: &[
            plain("MYSQL_HOST", Some("localhost")),
            plain("MYSQL_PORT", Some("3306")),
            plain("MYSQL_USER", Some("root")),
            secret("MYSQL_PASSWORD"),
            plain("MYSQL_DATABASE", None),
        ],
    },
    Template {
        name: "openai",
        description: "OpenAI API",
        keys: &[secret("OPENAI_API_KEY")],
    },
    Template {
        name: "postgres",
        description: "PostgreSQL (libpq's variables, read by psql and most drivers)",
        keys: &[
            plain("PGHOST", Some("localhost")),
            plain("PGPORT", Some("5432")),
            plain("PGUSER", Some("postgres")),
            secret("PGPASSWORD"),
            plain("PGDATABASE", Some("postgres")),
        ],
    },
    Template {
        name: "redis",
        description: "Redis",
        keys: &[
            plain("REDIS_HOST", Some("localhost")),
            plain("REDIS_PORT", Some("6379")),
            secret("REDIS_PASSWORD"),
        ],
    },
    Template {
        name: "sentry",
        description: "Sentry",
        keys: &[secret("SENTRY_DSN")],
    },
    Template {
        name: "slack",
        description: "Slack app",
        keys: &[secret("SLACK_BOT_TOKEN"), secret("SLACK_SIGNING_SECRET")],
    },
    Template {
        name: "stripe",
        description: "Stripe",
        keys: &[
            secret("STRIPE_SECRET_KEY"),
            plain("STRIPE_PUBLISHABLE_KEY", None),
        ],
    },
    Template {
        name: "wandb",
        description: "Weights & Biases",
        keys: &[secret("WANDB_API_KEY")],
    },
];

pub(crate) fn find(name: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_sorted_valid_and_complete() {
        let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        for want in [
            "postgres",
            "mysql",
            "mongodb",
            "redis",
            "aws",
            "gcp",
            "azure",
            "openai",
            "anthropic",
            "huggingface",
            "wandb",
            "github",
            "stripe",
            "slack",
            "sentry",
        ] {
            assert!(find(want).is_some(), "{want}");
        }
        for t in TEMPLATES {
            assert!(!t.keys.is_empty());
            assert!(
                t.keys.iter().any(|k| k.secret),
                "{} has a secret key",
                t.name
            );
            for k in t.keys {
                assert!(crate::names::is_env_key(k.name), "{}", k.name);
            }
        }
        let pg: Vec<_> = find("postgres")
            .unwrap()
            .keys
            .iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(
            pg,
            ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"]
        );
    }
}
