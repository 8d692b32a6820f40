//! Tables from template.yaml.
