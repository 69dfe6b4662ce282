//! Plans, orders, checkout, payments, refunds, revenue and broadcasts.

use futures_util::Stream;
use reqwest::Method;
use vpnctl_api::billing::{
    Checkout, CheckoutAnswer, CreateOrder, CreatePlan, Order, Payment, PaymentApplied,
    PaymentQuery, Plan, PlanQuery, ReceivedPayment, RefundResult, RevenueLine, RevenueQuery,
    SetRenewal, Subscription,
};
use vpnctl_api::body::Page;
use vpnctl_api::broadcast::{Broadcast, BroadcastPreview, CreateBroadcast};
use vpnctl_api::routes;
use vpnctl_api::{OrderId, PaymentId, PlanId, UserId};

use crate::{ApiClient, ClientError};

impl ApiClient {
    /// The active plans; retired ones too when `all`.
    pub async fn plans(&self, all: bool) -> Result<Vec<Plan>, ClientError> {
        let path = routes::PLANS.template();
        self.json(
            path,
            self.request(Method::GET, path).query(&PlanQuery { all }),
        )
        .await
    }

    pub async fn create_plan(&self, new: &CreatePlan) -> Result<Plan, ClientError> {
        self.post(routes::PLANS.template(), new).await
    }

    pub async fn retire_plan(&self, id: PlanId) -> Result<Plan, ClientError> {
        self.post(&routes::PLAN_RETIRE.path(id), &serde_json::json!({}))
            .await
    }

    /// An order for `plan` by `user`: its payload goes into the invoice.
    pub async fn create_order(&self, user: UserId, plan: PlanId) -> Result<Order, ClientError> {
        self.post(routes::ORDERS.template(), &CreateOrder { user, plan })
            .await
    }

    /// May this invoice be paid now (Telegram's pre-checkout query)?
    pub async fn checkout(&self, checkout: &Checkout) -> Result<CheckoutAnswer, ClientError> {
        self.post(routes::ORDERS_CHECKOUT.template(), checkout)
            .await
    }

    /// Records a payment Telegram confirmed; repeating it changes nothing.
    pub async fn record_payment(
        &self,
        payment: &ReceivedPayment,
    ) -> Result<PaymentApplied, ClientError> {
        self.post(routes::PAYMENTS.template(), payment).await
    }

    pub async fn payment(&self, id: PaymentId) -> Result<Payment, ClientError> {
        self.get(&routes::PAYMENT.path(id)).await
    }

    /// One page of payments, newest first; `next` is the next page's `before`.
    pub async fn payments_page(&self, query: &PaymentQuery) -> Result<Page<Payment>, ClientError> {
        self.page(routes::PAYMENTS.template(), query).await
    }

    /// The pages of payments `query` selects, newest first, as they come.
    pub fn payments_pages(
        &self,
        query: PaymentQuery,
    ) -> impl Stream<Item = Result<Vec<Payment>, ClientError>> + Send + '_ {
        self.pages(query)
    }

    /// Asks the bot to return the Stars of a payment.
    pub async fn request_refund(&self, id: PaymentId) -> Result<Payment, ClientError> {
        self.post(&routes::PAYMENT_REFUND.path(id), &serde_json::json!({}))
            .await
    }

    /// Reports what Telegram answered a refund (`error`: its description).
    pub async fn refund_result(
        &self,
        id: PaymentId,
        error: Option<String>,
    ) -> Result<Payment, ClientError> {
        self.post(
            &routes::PAYMENT_REFUND_RESULT.path(id),
            &RefundResult { error },
        )
        .await
    }

    /// Takings per day and plan over the last `days` days.
    pub async fn revenue(&self, days: Option<u32>) -> Result<Vec<RevenueLine>, ClientError> {
        let path = routes::REVENUE.template();
        self.json(
            path,
            self.request(Method::GET, path)
                .query(&RevenueQuery { days }),
        )
        .await
    }

    /// A user's Stars subscriptions.
    pub async fn subscriptions(&self, user: UserId) -> Result<Vec<Subscription>, ClientError> {
        self.get(&routes::USER_SUBSCRIPTIONS.path(user)).await
    }

    /// Records a renewal cancelled (or resumed) with Telegram.
    pub async fn set_renewal(
        &self,
        user: UserId,
        order: OrderId,
        cancelled: bool,
    ) -> Result<Subscription, ClientError> {
        self.post(
            routes::SUBSCRIPTION_RENEWAL.template(),
            &SetRenewal {
                user,
                order,
                cancelled,
            },
        )
        .await
    }

    /// How many users a broadcast to `audience` would reach; queues nothing.
    pub async fn preview_broadcast(&self, new: &CreateBroadcast) -> Result<u32, ClientError> {
        let preview: BroadcastPreview = self
            .post(routes::BROADCASTS_PREVIEW.template(), new)
            .await?;
        Ok(preview.recipients)
    }

    pub async fn create_broadcast(&self, new: &CreateBroadcast) -> Result<Broadcast, ClientError> {
        self.post(routes::BROADCASTS.template(), new).await
    }

    pub async fn broadcasts(&self) -> Result<Vec<Broadcast>, ClientError> {
        self.get(routes::BROADCASTS.template()).await
    }

    pub async fn broadcast(&self, id: u64) -> Result<Broadcast, ClientError> {
        self.get(&routes::BROADCAST.path(id)).await
    }

    pub async fn cancel_broadcast(&self, id: u64) -> Result<Broadcast, ClientError> {
        self.post(&routes::BROADCAST_CANCEL.path(id), &serde_json::json!({}))
            .await
    }
}

impl crate::client::PagedQuery for PaymentQuery {
    type Item = Payment;
    const PATH: &'static str = routes::PAYMENTS.template();
    /// Payments page backwards: the cursor is the next page's `before`.
    fn set_cursor(&mut self, next: u64) {
        self.before = Some(PaymentId(next));
    }
}
