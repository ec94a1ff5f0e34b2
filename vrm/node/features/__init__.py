"""The features every node runs, one package each, and how they are put together.

Each feature is built from the node's narrow ``FeatureContext`` and declares what it
adds (``vrm.node.feature.Declarations``). Features that use each other get what they
need here, as plain callables, so no feature looks another up at run time:

- ``discovery``: LAN peers (mDNS), domains (DNS), the whoami proof, endpoint moves;
- ``data``: the personal data store, grants, personal terms and agreements;
- ``intents``: intents out, offers back, accept, notices; vendors' offer rules.

A new feature goes in a package of its own here (``service.py`` for what it does,
``routes.py`` for its admin API, ``feature.py`` for what it declares), and into
``default_features``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vrm.node.context import FeatureContext
from vrm.node.feature import Feature
from vrm.node.features.data.feature import DataFeature
from vrm.node.features.discovery.feature import DiscoveryFeature
from vrm.node.features.intents.feature import IntentsFeature
from vrm.node.features.intents.seen import lan_vendors
from vrm.protocol.agreement import Agreement
from vrm.storage.database import Tx

__all__ = ["DataFeature", "DiscoveryFeature", "IntentsFeature", "default_features"]


def default_features(ctx: FeatureContext) -> Sequence[Feature]:
    discovery = DiscoveryFeature(ctx)
    data = DataFeature(ctx)
    store = data.service.db

    async def keep_agreement(agreement: Agreement, peer: str, tx: Tx) -> None:
        await store.put_agreement(agreement, peer, now=ctx.now(), tx=tx)

    intents = IntentsFeature(
        ctx,
        keep_agreement=keep_agreement,
        vendor_sources=[lan_vendors(discovery.service.mdns)],
        prove=discovery.service.prove,
    )
    return [discovery, data, intents]
