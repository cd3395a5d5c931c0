"""The simulator's presets: each a story of the 短直短 loop with its behaviour and noise rates."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")
MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
SKU_PRICES_FEN = (990, 1990, 2990, 4990, 6990, 9990, 15990, 19990, 29990, 49990)
SHELF_SOURCES = ("mall", "search", "store", "recommend")


@dataclass(frozen=True)
class Rates:
    """Behaviour and noise rates (probabilities per event unless said otherwise)."""

    engaged: float = 0.55  # a view watched >= 3 s (a touchpoint)
    video_buy: float = 0.010  # engaged short-video viewer pays in the video
    clip_buy: float = 0.030  # engaged clip viewer pays in the clip
    video_to_live: float = 0.20  # engaged viewer enters a live of the same account or shop, if one is on
    live_buy: float = 0.04  # live enter that pays in the live (a few minutes later)
    shelf_later: float = 0.012  # engaged viewer who buys on the shelf hours later
    shelf_cold: float = 0.08  # shelf orders per minute per shop from users with no content touch
    refund: float = 0.08  # paid orders refunded (5-10% in the product's markets)
    full_refund_share: float = 0.5  # of refunds, full; the rest partial (sometimes in two parts)
    duplicate: float = 0.01  # events re-sent with the same event_id
    late: float = 0.02  # events delivered out of order, up to max_displacement messages late
    malformed: float = 0.0005  # malformed messages (dead letters)
    private: float = 0.25  # private-domain (私域) traffic share
    epoch_ms: float = 0.2  # events whose event_time is epoch milliseconds rather than ISO-8601
    # Per shop, when a scenario gives its shops rates of their own (``Scenario.shop_rates``); the
    # defaults leave every other story as it was (x * 1.0 and x * 2.0 are what they always were).
    referred_live_buy: float = 2.0  # live_buy multiplier for an enter referred by a short video or clip
    clip_reach: float = 1.0  # multiplier on the popularity of the clips cut from a live
    live_reach: float = 1.0  # multiplier on a live's own audience (enters from the feed, follows, search...)
    clip_recall: float = 0.0  # share of clip viewers drawn from the audience of the live it was cut from


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    days: int
    shops: int = 3
    distributors: int = 2  # distributor accounts per shop (川流)
    users: int = 20_000
    audience: float = 1.0  # views per minute of a video of popularity 1 (scales everything)
    self_lives: tuple[tuple[float, float], ...] = ((19.0, 3.0),)  # daily (start hour in Shanghai, hours)
    distributor_lives: tuple[tuple[float, float], ...] = ((20.5, 2.0),)
    distributor_live_share: float = 1.0  # share of days a distributor goes live (other days: videos only)
    live_audience: float = 6.0  # live enters per minute (at popularity 1), before referrals
    videos_per_day: int = 2  # short videos per account per day
    growth: float = 1.0  # daily audience multiplier
    takeoff_day: int | None = None  # a short video posted the day before takes off (0-based day)
    takeoff_boost: float = 40.0
    big_live_day: int | None = None  # a big self-broadcast live this day (followed by a clip tail)
    big_live_boost: float = 12.0
    clip_half_life_h: float = 18.0  # clip views halve every this many hours
    clips_per_live: int = 3
    rates: Rates = field(default_factory=Rates)
    # Rates of shop i: shop_rates[i % len], when given (the delivery noise stays ``rates``'s).
    shop_rates: tuple[Rates, ...] = ()
    hours: float | None = None  # end the story this many hours after its start (default: after ``days``)
    incidents: bool = False  # inject the incidents of ``gmv.tools.simulator.incidents.Incidents``
    routines: bool = False  # daily routines and incidents of ``gmv.tools.simulator.routines.Routines``
    live_jitter_minutes: int = 20  # a live starts up to this many minutes after its hour (1: on the minute)
    demo_scale: float = 4.0  # `gmv demo`'s default --scale for this preset
    # A live room with viewers sells every few minutes (``EventBuilder.enter``): no ten minutes of
    # viewers without an order, which the alert rule live_no_orders pages for, unless an incident
    # plans them. Off where rooms rarely converting is the story (stage_worth's shop2).
    steady_live_sales: bool = True

    @property
    def ends(self) -> bool:
        """A story told for its planned incidents ends with its last one, endless demo or not: what
        it is for is the reconciliation of the alerts it planned (an endless one would plan none)."""
        return self.hours is not None or self.incidents or self.routines

    def shop_rates_of(self, index: int) -> Rates:
        """How the buyers of the ``index``-th shop behave."""
        return self.shop_rates[index % len(self.shop_rates)] if self.shop_rates else self.rates

    def scaled(self, factor: float) -> Scenario:
        """The same story with ``factor`` times the audience and users (denser event time)."""
        if factor == 1:
            return self
        return replace(self, audience=self.audience * factor, live_audience=self.live_audience * factor,
                       users=max(1, int(self.users * factor)))


# stage_worth's shops, one story each, so that the removal effects of the markov model (SPEC §9) differ
# clearly between them. Every shop also draws viewers who watch and leave (journeys that end in null):
# what a stage is worth is measured on those too.
STAGE_WORTH_RATES = (
    # shop0: short videos seed the live. Its live has little audience of its own: most come from its
    # videos, and buy far more than the rest; others buy in the video itself. Few clips, little shelf.
    Rates(video_buy=0.025, video_to_live=0.6, live_buy=0.004, referred_live_buy=40.0, live_reach=0.08,
          clip_buy=0.002, clip_reach=0.3, shelf_later=0.001, shelf_cold=0.002),
    # shop1: the live sells little, but its many clips bring its viewers back to buy after it ended.
    Rates(video_buy=0.002, video_to_live=0.10, live_buy=0.005, clip_buy=0.08, clip_reach=3.0, clip_recall=0.5,
          shelf_later=0.002, shelf_cold=0.01),
    # shop2: sells on the shelf; its videos and lives draw viewers who almost never buy there.
    Rates(video_buy=0.001, video_to_live=0.15, live_buy=0.002, referred_live_buy=1.0, clip_buy=0.002,
          shelf_later=0.004, shelf_cold=0.25),
)

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("mixed", "Three shops, brand self-broadcast and distributors, every stage and source of noise",
             days=3, shops=3, distributors=2, users=12_000, audience=0.5, distributor_live_share=0.6),
    Scenario("cold_start", "Brand cold start: one shop lives ~16 h a day and posts 5+ short videos a day",
             days=5, shops=1, distributors=1, users=8_000, audience=0.35,
             self_lives=((8.0, 8.0), (16.0, 8.0)), distributor_lives=(), videos_per_day=6, growth=1.35,
             live_audience=1.2),
    Scenario("takeoff", "A short video takes off on day 4; the live that follows sells 100k+ yuan",
             days=5, shops=2, distributors=2, users=15_000, audience=0.25, takeoff_day=3, takeoff_boost=800.0,
             live_audience=2.0),
    Scenario("clip_tail", "A big live, then its clips keep selling for days (二次销售)",
             days=5, shops=2, distributors=1, users=15_000, audience=0.25, big_live_day=0, big_live_boost=25.0,
             clip_half_life_h=36.0, clips_per_live=5, live_audience=2.0),
    Scenario("incidents", "Two shops' lives at 01:00 with incidents for the alert rules: a room whose orders stop "
             "while viewers stay, a refund spike, a burst of malformed events, a 45 s pause that builds lag",
             days=1, hours=4.5, shops=2, distributors=1, users=20_000, audience=0.5, self_lives=((1.0, 3.0),),
             distributor_lives=(), live_audience=100.0, demo_scale=1.0, incidents=True),
    Scenario("routines", "Two weeks of daily routines (a warm-up without orders, a flash sale then GMV falling "
             "back, a room off air for a break, a morning refund batch) and three incidents on the last days",
             days=14, shops=2, distributors=1, users=20_000, audience=0.5, self_lives=((1.0, 1.5), (2.75, 1.25)),
             distributor_lives=(), videos_per_day=0, clips_per_live=0, live_audience=15.0, live_jitter_minutes=1,
             rates=Rates(live_buy=0.4, shelf_cold=0.0, shelf_later=0.0), demo_scale=1.0, routines=True,
             steady_live_sales=False),  # its warm-ups and incidents are rooms that do not sell
    Scenario("stage_worth", "What a stage is worth differs by shop (model markov): shop0's short videos seed "
             "buyers into its lives, shop1's clips bring its live's viewers back to buy, shop2 sells on the shelf "
             "while its content rarely converts; most viewers watch and leave",
             days=3, shops=3, distributors=1, users=12_000, audience=0.5, self_lives=((12.0, 3.0), (19.0, 3.0)),
             distributor_lives=((20.5, 2.0),), videos_per_day=3, live_audience=3.0,
             shop_rates=STAGE_WORTH_RATES, demo_scale=3.0, steady_live_sales=False),
)}


def default_start(days: int, now: datetime | None = None) -> datetime:
    """Midnight (Asia/Shanghai) ``days`` days ago: the scenario ends about today, never in the future."""
    now = (now or datetime.now(UTC)).astimezone(SHANGHAI)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - timedelta(days=days)).astimezone(UTC)
