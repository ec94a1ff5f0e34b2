"""What the demo's nodes are configured with: each car-rental vendor's offer rules
(docs/vendors.md) and the terms Alice proffers and the bookshop refuses (docs/terms.md)."""

from __future__ import annotations

__all__ = ["ALICE_TERMS", "BOOKSHOP_TERMS", "RENTAL_RULES"]

RENTAL_RULES = {
    "Park City Rentals": """
[[rule]]
name = "winter-suv"
category = "car-rental"
want = { drive = ["4wd", "awd"] }
text = "Jeep Grand Cherokee 4WD"
terms = ["Unlimited miles", "Snow tyres"]
expires = "12h"
price = { base = 25, per_day = "65.50", currency = "USD" }
""",
    "Summit Cars": """
[[rule]]
name = "suv"
category = "car-rental"
want = { drive = "*" }
text = "Toyota 4Runner 4WD"
terms = ["Free cancellation"]
expires = "12h"
price = { per_day = 68, currency = "USD" }
""",
    "Budget Wheels": """
[[rule]]
name = "compacts-only"
category = "car-rental"
want = { drive = ["4wd", "awd"] }
decline = "We only rent compact cars."
""",
}

ALICE_TERMS = """
[terms]
proffer = ["P2B1", "PDC-AI"]
require = ["PDC-AI"]
"""
BOOKSHOP_TERMS = """
[terms]
refuse = ["PDC-AI"]
"""
