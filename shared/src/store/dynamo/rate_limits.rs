//! Rate-limit counters in the usage table: `pk = PROJECT#{id}#RATE#{scope}`,
//! `sk = WINDOW#{unix seconds}`, attributes `requests` (the count) and `expires_at` (the
//! table's TTL attribute). One UpdateItem per counted request.

use aws_sdk_dynamodb::error::SdkError;

use super::{DynamoStore, db_error, n, s};
use crate::error::ApiError;
use crate::rate_limit::Window;
use crate::store::RateLimitStore;

impl RateLimitStore for DynamoStore {
    async fn count_request(
        &self,
        scope: &str,
        project_id: i64,
        window: &Window,
        limit: u32,
    ) -> Result<bool, ApiError> {
        let counted = self
            .client
            .update_item()
            .table_name(&self.tables.usage)
            .key("pk", s(format!("PROJECT#{project_id}#RATE#{scope}")))
            .key("sk", s(format!("WINDOW#{}", window.start)))
            .update_expression("ADD requests :one SET expires_at = :expires")
            .condition_expression("attribute_not_exists(requests) OR requests < :limit")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":expires", n(window.expires_at))
            .expression_attribute_values(":limit", n(i64::from(limit)))
            .send()
            .await;
        match counted {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(false)
            }
            Err(e) => Err(db_error(e)),
        }
    }
}
