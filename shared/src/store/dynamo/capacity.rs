//! Capacity metering for the request log (`crate::request_log`): an interceptor on the
//! DynamoDB client asks every item and query call for its consumed capacity
//! (`ReturnConsumedCapacity: TOTAL`, free of charge) and adds what the answer reports to the
//! current request's total. One place for every call the adapter makes, so no call site needs
//! to remember it. A call that fails (a lost condition, a cancelled transaction) reports no
//! capacity and is not counted, though DynamoDB bills its write.

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation;
use aws_sdk_dynamodb::types::{ConsumedCapacity, ReturnConsumedCapacity};

#[derive(Debug, Clone, Copy, Default)]
pub struct CapacityMeter;

fn sum(capacities: &[ConsumedCapacity]) -> f64 {
    capacities
        .iter()
        .filter_map(ConsumedCapacity::capacity_units)
        .sum()
}

impl Intercept for CapacityMeter {
    fn name(&self) -> &'static str {
        "CapacityMeter"
    }

    fn modify_before_serialization(
        &self,
        context: &mut BeforeSerializationInterceptorContextMut<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let input = context.input_mut();
        let total = Some(ReturnConsumedCapacity::Total);
        macro_rules! ask {
            ($($module:ident :: $ty:ident),+) => {
                $(
                    if let Some(i) = input.downcast_mut::<operation::$module::$ty>() {
                        if i.return_consumed_capacity.is_none() {
                            i.return_consumed_capacity = total.clone();
                        }
                        return Ok(());
                    }
                )+
            };
        }
        ask!(
            get_item::GetItemInput,
            put_item::PutItemInput,
            update_item::UpdateItemInput,
            delete_item::DeleteItemInput,
            query::QueryInput,
            scan::ScanInput,
            batch_get_item::BatchGetItemInput,
            batch_write_item::BatchWriteItemInput,
            transact_get_items::TransactGetItemsInput,
            transact_write_items::TransactWriteItemsInput
        );
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        macro_rules! one {
            ($($module:ident :: $ty:ident),+) => {
                $(
                    if let Some(o) = output.downcast_ref::<operation::$module::$ty>() {
                        let units = o.consumed_capacity.as_ref().and_then(ConsumedCapacity::capacity_units);
                        crate::request_log::add_capacity_units(units.unwrap_or(0.0));
                        return Ok(());
                    }
                )+
            };
        }
        macro_rules! many {
            ($($module:ident :: $ty:ident),+) => {
                $(
                    if let Some(o) = output.downcast_ref::<operation::$module::$ty>() {
                        crate::request_log::add_capacity_units(sum(o.consumed_capacity.as_deref().unwrap_or_default()));
                        return Ok(());
                    }
                )+
            };
        }
        one!(
            get_item::GetItemOutput,
            put_item::PutItemOutput,
            update_item::UpdateItemOutput,
            delete_item::DeleteItemOutput,
            query::QueryOutput,
            scan::ScanOutput
        );
        many!(
            batch_get_item::BatchGetItemOutput,
            batch_write_item::BatchWriteItemOutput,
            transact_get_items::TransactGetItemsOutput,
            transact_write_items::TransactWriteItemsOutput
        );
        Ok(())
    }
}
