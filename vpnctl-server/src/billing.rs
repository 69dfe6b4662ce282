//! The routes of selling access (plans, orders and checkout, payments, refunds,
//! revenue) and of broadcasts. The rules are core's (`vpnctl_core::service` billing); these only
//! carry them over HTTP.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use vpnctl_api::billing::{
    Checkout, CheckoutAnswer, CreateOrder, CreatePlan, Order, Payment, PaymentApplied,
    PaymentQuery, Plan, PlanQuery, ReceivedPayment, RefundResult, RevenueLine, RevenueQuery,
    SetRenewal, Subscription,
};
use vpnctl_api::broadcast::{Broadcast, BroadcastPreview, CreateBroadcast};
use vpnctl_api::routes;
use vpnctl_core::{PaymentId, PlanId};

use crate::error::{ApiFailure, blocking};
use crate::extract::{Admin, Json, Path, Query, Staff};
use crate::state::AppState;

type ApiResult<T> = Result<T, ApiFailure>;

/// Days of revenue shown when none are asked for.
const DEFAULT_REVENUE_DAYS: u32 = 30;

pub(crate) fn router() -> axum::Router<AppState> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route(routes::PLANS.template(), get(list_plans).post(create_plan))
        .route(routes::PLAN_RETIRE.template(), post(retire_plan))
        .route(routes::ORDERS.template(), post(create_order))
        .route(routes::ORDERS_CHECKOUT.template(), post(checkout))
        .route(
            routes::PAYMENTS.template(),
            get(list_payments).post(record_payment),
        )
        .route(routes::PAYMENT.template(), get(get_payment))
        .route(routes::PAYMENT_REFUND.template(), post(request_refund))
        .route(
            routes::PAYMENT_REFUND_RESULT.template(),
            post(refund_result),
        )
        .route(routes::REVENUE.template(), get(revenue))
        .route(routes::USER_SUBSCRIPTIONS.template(), get(subscriptions))
        .route(routes::SUBSCRIPTION_RENEWAL.template(), post(set_renewal))
        .route(
            routes::BROADCASTS.template(),
            get(list_broadcasts).post(create_broadcast),
        )
        .route(
            routes::BROADCASTS_PREVIEW.template(),
            post(preview_broadcast),
        )
        .route(routes::BROADCAST.template(), get(get_broadcast))
        .route(routes::BROADCAST_CANCEL.template(), post(cancel_broadcast))
}

async fn list_plans(
    _: Staff,
    State(st): State<AppState>,
    Query(q): Query<PlanQuery>,
) -> ApiResult<Json<Vec<Plan>>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.plans(q.all)).await?))
}

async fn create_plan(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<CreatePlan>,
) -> ApiResult<(StatusCode, Json<Plan>)> {
    let vpn = caller.vpn(&st);
    let plan = blocking(move || vpn.create_plan(body)).await?;
    Ok((StatusCode::CREATED, Json(plan)))
}

async fn retire_plan(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<PlanId>,
) -> ApiResult<Json<Plan>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.retire_plan(id)).await?))
}

async fn create_order(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Json(body): Json<CreateOrder>,
) -> ApiResult<(StatusCode, Json<Order>)> {
    let vpn = caller.vpn(&st);
    let order = blocking(move || vpn.create_order(body.user, body.plan)).await?;
    Ok((StatusCode::CREATED, Json(order)))
}

async fn checkout(
    _: Staff,
    State(st): State<AppState>,
    Json(body): Json<Checkout>,
) -> ApiResult<Json<CheckoutAnswer>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.checkout(&body)).await?))
}

async fn record_payment(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Json(body): Json<ReceivedPayment>,
) -> ApiResult<Response> {
    let vpn = caller.vpn(&st);
    let applied: PaymentApplied = blocking(move || vpn.record_payment(&body)).await?;
    let status = if applied.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(applied)).into_response())
}

async fn list_payments(
    _: Staff,
    State(st): State<AppState>,
    Query(q): Query<PaymentQuery>,
) -> ApiResult<Response> {
    let vpn = st.vpn().clone();
    crate::routes::page_response(move || vpn.payments(q)).await
}

async fn get_payment(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<PaymentId>,
) -> ApiResult<Json<Payment>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.payment(id)).await?))
}

async fn request_refund(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<PaymentId>,
) -> ApiResult<Json<Payment>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.request_refund(id)).await?))
}

async fn refund_result(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Path(id): Path<PaymentId>,
    Json(body): Json<RefundResult>,
) -> ApiResult<Json<Payment>> {
    let vpn = caller.vpn(&st);
    Ok(Json(
        blocking(move || vpn.finish_refund(id, body.error.as_deref())).await?,
    ))
}

async fn revenue(
    _: Admin,
    State(st): State<AppState>,
    Query(q): Query<RevenueQuery>,
) -> ApiResult<Json<Vec<RevenueLine>>> {
    let vpn = st.vpn().clone();
    let days = q.days.unwrap_or(DEFAULT_REVENUE_DAYS);
    Ok(Json(blocking(move || vpn.revenue(days)).await?))
}

async fn subscriptions(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<vpnctl_core::UserId>,
) -> ApiResult<Json<Vec<Subscription>>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.subscriptions(id)).await?))
}

async fn set_renewal(
    Staff(caller): Staff,
    State(st): State<AppState>,
    Json(body): Json<SetRenewal>,
) -> ApiResult<Json<Subscription>> {
    let vpn = caller.vpn(&st);
    Ok(Json(
        blocking(move || vpn.set_renewal(body.user, body.order, body.cancelled)).await?,
    ))
}

async fn list_broadcasts(_: Admin, State(st): State<AppState>) -> ApiResult<Json<Vec<Broadcast>>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.broadcasts()).await?))
}

async fn create_broadcast(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Json(body): Json<CreateBroadcast>,
) -> ApiResult<(StatusCode, Json<Broadcast>)> {
    let vpn = caller.vpn(&st);
    let b = blocking(move || vpn.create_broadcast(&body.text, body.audience)).await?;
    Ok((StatusCode::CREATED, Json(b)))
}

async fn preview_broadcast(
    _: Admin,
    State(st): State<AppState>,
    Json(body): Json<CreateBroadcast>,
) -> ApiResult<Json<BroadcastPreview>> {
    let vpn = st.vpn().clone();
    let recipients = blocking(move || vpn.broadcast_recipients(&body.audience)).await?;
    Ok(Json(BroadcastPreview { recipients }))
}

async fn get_broadcast(
    _: Staff,
    State(st): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Broadcast>> {
    let vpn = st.vpn().clone();
    Ok(Json(blocking(move || vpn.broadcast(id)).await?))
}

async fn cancel_broadcast(
    Admin(caller): Admin,
    State(st): State<AppState>,
    Path(id): Path<u64>,
) -> ApiResult<Json<Broadcast>> {
    let vpn = caller.vpn(&st);
    Ok(Json(blocking(move || vpn.cancel_broadcast(id)).await?))
}
