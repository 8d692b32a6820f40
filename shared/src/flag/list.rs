//! List filters, ordering and pagination for GET /feature_flags/ (§5.1).
