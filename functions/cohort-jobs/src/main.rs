//! Lambda behind the cohorts table's stream: each record of a cohort still calculating moves
//! its fill on by a bounded amount of work. Thin on purpose: everything lives in `shared`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::workers::cohort_fill::serve().await
}
