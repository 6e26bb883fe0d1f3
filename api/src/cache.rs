//! The stat endpoint's answers, cached per month list until a flush of this node, a change of
//! the backend's data version (another node's flush, a backfill) or their TTL makes them stale.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use authstat_config::ApiConfig;
use std::collections::BTreeMap;

use authstat_core::hll::Hll;
use authstat_core::store::{StatStore, StoreError};
use authstat_core::{Month, MonthStats};

use super::ApiStats;
use super::stat::{self, Format, Grouping};
use crate::active::{Active, Range};
use authstat_core::dims::{Dim, DimKind, MonthDims};

/// A range's answer: when it was made, how long it may be used, what it depends on, the answer.
type CachedRange = (Instant, Duration, Vec<(u64, u64)>, Arc<Active>);

/// What an answer is of: its months, and the grouping per client or realm, if any.
type Key = (Vec<Month>, Option<Grouping>);

/// How often the backend's data version is checked.
pub const DATA_VERSION_EVERY: Duration = Duration::from_secs(1);

/// The cache holds at most this many bytes of answers (rendered bodies; no HLL is kept);
/// beyond, moka evicts the answers least likely to be asked again (TinyLFU), one at a time.
const CACHE_BYTES: u64 = 32 << 20;

/// Ranges of days whose answers are kept (an answer is a few numbers per period).
const RANGES_KEPT: u64 = 1_000;

/// Backend reads for answers that are not cached, at most this many at once: each holds the
/// rows of its months while it merges them, so memory stays bounded under a burst of distinct
/// requests.
const CONCURRENT_READS: usize = 4;

/// Answers by month list, with when they were made and, for each of their months, its version in
/// the backend and this node's writes of it then: a flush of this node makes the answers with
/// the months it wrote stale at once, a write of another node or a backfill within
/// [`DATA_VERSION_EVERY`]; answers of months nobody wrote stay.
pub struct StatCache {
    store: Arc<dyn StatStore>,
    /// This node's flushes.
    flushes: Arc<dyn super::AgentStatus>,
    /// Hits, misses and backend errors are counted here.
    counters: Arc<ApiStats>,
    /// Answers by month list, each expiring after its own TTL.
    entries: moka::sync::Cache<Key, Cached>,
    /// Limits the backend reads of cache misses.
    reads: tokio::sync::Semaphore,
    /// Each month's version in the backend (see [`StatStore::month_versions`]) as last seen.
    versions: std::sync::RwLock<std::collections::BTreeMap<Month, u64>>,
    /// Active users of ranges of days, by range (they depend on their months like the answers).
    ranges: moka::sync::Cache<Range, CachedRange>,
}

impl std::fmt::Debug for StatCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatCache")
            .field("versions", &self.versions)
            .finish_non_exhaustive()
    }
}

impl StatCache {
    /// An empty cache over `store`.
    pub fn new(
        store: Arc<dyn StatStore>,
        flushes: Arc<dyn super::AgentStatus>,
        counters: Arc<ApiStats>,
    ) -> Self {
        Self {
            store,
            flushes,
            counters,
            entries: moka::sync::Cache::builder()
                .max_capacity(CACHE_BYTES)
                .weigher(|(months, _): &Key, cached: &Cached| {
                    let bytes = cached.answer.bytes() + months.len() * 8 + 64;
                    u32::try_from(bytes).unwrap_or(u32::MAX)
                })
                .expire_after(OwnTtl)
                .build(),
            reads: tokio::sync::Semaphore::new(CONCURRENT_READS),
            versions: Default::default(),
            ranges: moka::sync::Cache::builder()
                .max_capacity(RANGES_KEPT)
                .build(),
        }
    }

    /// The active users of `range`, from the cache while fresh (a range including today: at
    /// most `current_month_ttl_secs` old).
    pub async fn active_users(
        &self,
        config: &ApiConfig,
        range: Range,
    ) -> Result<Arc<Active>, authstat_core::store::StoreError> {
        let today = authstat_core::dims::day_of_millis(authstat_core::month::now_ms());
        let ttl = Duration::from_secs(if range.to >= today {
            config.cache_ttl_secs.min(config.current_month_ttl_secs)
        } else {
            config.cache_ttl_secs
        });
        let months = range.months();
        let generation = self.generation(&months);
        if let Some((made, kept, made_of, answer)) = self.ranges.get(&range)
            && made.elapsed() < kept.min(ttl)
            && made_of == generation
        {
            return Ok(self.hit(answer));
        }
        let _permit = self.miss().await;
        let read = self.store.read_dims(&months, DimKind::Day);
        let mut answer = crate::active::active(range, &users_by_day(self.counted(read).await?));
        if let Some(n) = range.clients {
            let read = self.store.read_dims(&months, DimKind::ClientDay);
            let by_client = users_by_client_and_day(self.counted(read).await?);
            answer.clients = Some(crate::active::clients_of(&range, n, &by_client));
        }
        let answer = Arc::new(answer);
        self.ranges
            .insert(range, (Instant::now(), ttl, generation, answer.clone()));
        Ok(answer)
    }

    /// A hit, counted.
    fn hit<T>(&self, answer: T) -> T {
        self.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
        answer
    }

    /// A miss, counted; the permit to read (at most [`CONCURRENT_READS`] reads at once).
    async fn miss(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.counters.cache_misses.fetch_add(1, Ordering::Relaxed);
        self.reads
            .acquire()
            .await
            .expect("the semaphore is never closed")
    }

    /// A read of the backend, its failure counted.
    async fn counted<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let read = read.await;
        if read.is_err() {
            self.counters.backend_errors.fetch_add(1, Ordering::Relaxed);
        }
        read
    }

    /// Drops every answer (a reload: TTLs may differ).
    pub fn clear(&self) {
        self.entries.invalidate_all();
        self.ranges.invalidate_all();
    }

    /// Keeps the months' versions current (a task the agent runs until it stops).
    pub async fn watch_data_version(&self) {
        let mut tick = tokio::time::interval(DATA_VERSION_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Ok(versions) = self.store.month_versions().await {
                *self.versions.write().expect("lock") = versions;
            }
        }
    }

    /// What an answer of `months` depends on: each month's version in the backend and this
    /// node's writes of it.
    fn generation(&self, months: &[Month]) -> Vec<(u64, u64)> {
        let versions = self.versions.read().expect("lock");
        months
            .iter()
            .map(|m| {
                (
                    versions.get(m).copied().unwrap_or(0),
                    self.flushes.flushes_of(*m),
                )
            })
            .collect()
    }

    /// Stats of `months` (per client or realm too, with `grouping`), from the cache while
    /// fresh. An answer including the current month is never older than
    /// `current_month_ttl_secs`.
    pub async fn answer(
        &self,
        config: &ApiConfig,
        months: Vec<Month>,
        grouping: Option<Grouping>,
    ) -> Result<Arc<Answer>, authstat_core::store::StoreError> {
        let now_month = Month::from_epoch_millis(authstat_core::month::now_ms()).ok();
        let ttl_secs = if now_month.is_some_and(|m| months.contains(&m)) {
            config.cache_ttl_secs.min(config.current_month_ttl_secs)
        } else {
            config.cache_ttl_secs
        };
        let ttl = Duration::from_secs(ttl_secs);
        let generation = self.generation(&months);
        let key = (months, grouping);
        if let Some(cached) = self.entries.get(&key)
            && cached.made.elapsed() < ttl
            && cached.generation == generation
        {
            return Ok(self.hit(cached.answer));
        }
        let _permit = self.miss().await;
        let months = &key.0;
        let (stats, dims) = self
            .counted(async {
                let stats = self.store.read_months(months).await?;
                let dims = match grouping {
                    Some(g) => Some((g, self.store.read_dims(months, g.kind).await?)),
                    None => None,
                };
                Ok((stats, dims))
            })
            .await?;
        let answer = Arc::new(Answer::new(stats, dims));
        self.entries.insert(
            key,
            Cached {
                made: Instant::now(),
                ttl,
                generation,
                answer: answer.clone(),
            },
        );
        Ok(answer)
    }
}

/// Each day's users, from the months' day dimensions.
fn users_by_day(months: Vec<MonthDims>) -> BTreeMap<i64, Hll> {
    months
        .into_iter()
        .flat_map(|month| month.dims)
        .filter_map(|(dim, stats)| Some((dim.as_day()?, stats.users)))
        .collect()
}

/// Each client's users of each day, from the months' client-day dimensions.
fn users_by_client_and_day(months: Vec<MonthDims>) -> BTreeMap<Dim, BTreeMap<i64, Hll>> {
    let mut by_client: BTreeMap<Dim, BTreeMap<i64, Hll>> = BTreeMap::new();
    for (dim, stats) in months.into_iter().flat_map(|month| month.dims) {
        if let Some((day, client)) = dim.as_client_day() {
            by_client
                .entry(client)
                .or_default()
                .insert(day, stats.users);
        }
    }
    by_client
}

/// A cached answer: when it was made, how long it may be used, what it depends on (see
/// [`StatCache::generation`]), the stats.
#[derive(Clone, Debug)]
struct Cached {
    made: Instant,
    ttl: Duration,
    generation: Vec<(u64, u64)>,
    answer: Arc<Answer>,
}

/// Each answer expires after its own TTL (shorter when it holds the current month).
struct OwnTtl;

impl moka::Expiry<Key, Cached> for OwnTtl {
    fn expire_after_create(
        &self,
        _key: &Key,
        cached: &Cached,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(cached.ttl)
    }
}

/// The rendered bodies of a month list's answer, made once when it is read (a cached hit costs
/// no cardinality computation and no serialization). The merged stats, HLLs included, are
/// dropped: an answer weighs only its bodies.
#[derive(Debug)]
pub struct Answer {
    /// JSON, JSON by month, OpenMetrics.
    bodies: [axum::body::Bytes; 3],
    /// Each month's distinct users and counters (the dashboard's figures).
    figures: Vec<super::dashboard::MonthFigures>,
    /// Per month, the top clients (realms) and the rest, when grouped (the dashboard's table).
    groups: Vec<super::dashboard::MonthGroup>,
}

impl Answer {
    fn new(stats: Vec<MonthStats>, grouped: Option<(Grouping, Vec<MonthDims>)>) -> Self {
        let body = |text: String| axum::body::Bytes::from(text);
        let dims = grouped.as_ref().map(|(g, d)| (*g, d.as_slice()));
        Self {
            bodies: [
                body(stat::json_body(&stats, Format::Json, dims)),
                body(stat::json_body(&stats, Format::JsonMonth, dims)),
                body(stat::openmetrics_body(&stats)),
            ],
            figures: stats
                .iter()
                .map(super::dashboard::MonthFigures::of)
                .collect(),
            groups: match &grouped {
                Some((g, dims)) => dims
                    .iter()
                    .map(|d| super::dashboard::MonthGroup::of(d, g.top))
                    .collect(),
                None => Vec::new(),
            },
        }
    }

    /// Per month, the top clients (or realms) and the rest, if the answer is grouped.
    pub fn groups(&self) -> &[super::dashboard::MonthGroup] {
        &self.groups
    }

    /// What it weighs in the cache (the figures: about 64 bytes per counter).
    fn bytes(&self) -> usize {
        let figures: usize = self
            .figures
            .iter()
            .map(|f| 64 + 64 * f.counters.iter().count())
            .sum::<usize>()
            + self
                .groups
                .iter()
                .map(|g| 64 + 96 * g.rows.len())
                .sum::<usize>();
        self.bodies
            .iter()
            .map(axum::body::Bytes::len)
            .sum::<usize>()
            + figures
    }

    /// The months' figures, ascending (months nobody stored anything for are absent).
    pub fn figures(&self) -> &[super::dashboard::MonthFigures] {
        &self.figures
    }

    pub(super) fn body(&self, format: Format) -> axum::body::Bytes {
        let slot = match format {
            Format::Json => 0,
            Format::JsonMonth => 1,
            Format::OpenMetrics => 2,
        };
        self.bodies[slot].clone()
    }
}
