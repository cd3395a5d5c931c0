"""Dimension data the events do not carry, loaded with ``gmv load-dim`` (strict pydantic models).

Two kinds, one file each, CSV (a header row naming the fields) or JSONL (one object per line):

- ``accounts``: account → shop bindings (一店多号). Fields ``account_id``, ``shop_id``,
  ``brand_id``, ``role`` (``self``: the brand's own account; ``distributor``: a 达人 or
  distributor account selling for the shop, 川流), optional ``brand_name``. An account may be
  bound to several shops; a binding is identified by (account_id, shop_id).
- ``skus``: the SKU catalog, one row per SKU listed by a shop on an Asia/Shanghai day. Fields
  ``day`` (YYYY-MM-DD), ``shop_id``, ``sku_id``, optional ``title`` and ``price_fen`` (integer
  fen). Identified by (shop_id, day, sku_id).

An empty CSV cell is a field not given. The same identity twice in one file is an error (which one did the file mean?). Loading again
replaces rows by identity; nothing is deleted.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_ID = Field(min_length=1, max_length=256)


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, frozen=True)


class AccountBinding(_Row):
    account_id: str = _ID
    shop_id: str = _ID
    brand_id: str = _ID
    role: Literal["self", "distributor"]
    brand_name: str = Field(default="", max_length=256)

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.account_id, self.shop_id)


class ListedSku(_Row):
    day: date
    shop_id: str = _ID
    sku_id: str = _ID
    title: str = Field(default="", max_length=1024)
    price_fen: int = Field(default=0, ge=0)

    @field_validator("price_fen", mode="before")
    @classmethod
    def _whole_fen(cls, v: object) -> object:
        if isinstance(v, float) or (isinstance(v, str) and not v.strip().lstrip("-").isdigit()):
            raise ValueError("price_fen must be a whole number of fen (e.g. 4990 for ¥49.90)")
        return v

    @property
    def identity(self) -> tuple[str, ...]:
        return (self.shop_id, self.day.isoformat(), self.sku_id)


DIMENSIONS: dict[str, type[AccountBinding] | type[ListedSku]] = {"accounts": AccountBinding, "skus": ListedSku}
