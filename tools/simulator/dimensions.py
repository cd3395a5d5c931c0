"""The dimension data matching a world (``gmv load-dim``): accounts and the daily SKU catalog."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from gmv.tools.simulator.content import BRAND_NAMES, Shop
from gmv.tools.simulator.scenarios import SHANGHAI, SKU_PRICES_FEN


def dimensions(shops: list[Shop], days: int, start_ms: int, seed_label: str) -> dict[str, list[dict[str, Any]]]:
    """From a random stream of its own (so asking for them never changes the events):
    ``accounts``, each shop's brand account (self) and distributors; ``skus``, the catalog of each
    Asia/Shanghai day of the story: each SKU the shop sells is listed on 9 days in 10, and three
    long-tail SKUs nobody buys on half the days (so 动销率 is below 1)."""
    rng = random.Random(f"{seed_label}:catalog")
    accounts: list[dict[str, Any]] = []
    skus: list[dict[str, Any]] = []
    first_day = datetime.fromtimestamp(start_ms / 1000, SHANGHAI).date()
    for i, shop in enumerate(shops):
        brand = f"B{i}"
        name = BRAND_NAMES[i % len(BRAND_NAMES)]
        accounts.append({"account_id": shop.brand, "shop_id": shop.shop_id, "brand_id": brand,
                         "role": "self", "brand_name": name})
        accounts.extend({"account_id": d, "shop_id": shop.shop_id, "brand_id": brand, "role": "distributor",
                         "brand_name": name} for d in shop.distributors)
    for day in range(days + 1):  # the story may end in the day after its last full one
        when = (first_day + timedelta(days=day)).isoformat()
        for shop in shops:
            tail = [(f"{shop.shop_id}-sku{8 + k}", SKU_PRICES_FEN[k]) for k in range(3)]
            for sku, price in shop.skus:
                if rng.random() < 0.9:
                    skus.append({"day": when, "shop_id": shop.shop_id, "sku_id": sku, "price_fen": price,
                                 "title": f"{shop.shop_id} 商品 {sku.rsplit('-', 1)[1]}"})
            for sku, price in tail:
                if rng.random() < 0.5:
                    skus.append({"day": when, "shop_id": shop.shop_id, "sku_id": sku, "price_fen": price,
                                 "title": f"{shop.shop_id} 长尾 {sku.rsplit('-', 1)[1]}"})
    return {"accounts": accounts, "skus": skus}
