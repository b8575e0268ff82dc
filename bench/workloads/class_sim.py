"""Class-heavy simulation: a small warehouse/market model.

Many short-lived instances of ordinary classes (with __slots__ and without),
properties, method dispatch, inheritance and dict-backed attributes.
"""
import random


class Item:
    def __init__(self, sku, weight, price):
        self.sku = sku
        self.weight = weight
        self.price = price

    @property
    def density(self):
        return self.price / self.weight


class Perishable(Item):
    def __init__(self, sku, weight, price, days):
        super().__init__(sku, weight, price)
        self.days = days

    @property
    def density(self):
        return super().density * (1.0 + 1.0 / (1 + self.days))


class Order:
    __slots__ = ("customer", "lines", "tick")

    def __init__(self, customer, tick):
        self.customer = customer
        self.lines = []
        self.tick = tick

    def add(self, item, qty):
        self.lines.append(Line(item, qty))

    def total(self):
        return sum(line.cost() for line in self.lines)


class Line:
    __slots__ = ("item", "qty")

    def __init__(self, item, qty):
        self.item = item
        self.qty = qty

    def cost(self):
        return self.item.price * self.qty


class Shelf:
    def __init__(self, name):
        self.name = name
        self.stock = {}

    def restock(self, item, qty):
        self.stock[item.sku] = self.stock.get(item.sku, 0) + qty

    def take(self, sku, qty):
        have = self.stock.get(sku, 0)
        got = min(have, qty)
        self.stock[sku] = have - got
        return got


class Warehouse:
    def __init__(self, rng, n_items):
        self.rng = rng
        self.catalog = []
        for i in range(n_items):
            if i % 3 == 0:
                item = Perishable(f"P{i}", rng.uniform(0.1, 5), rng.uniform(1, 50), rng.randrange(1, 30))
            else:
                item = Item(f"S{i}", rng.uniform(0.1, 20), rng.uniform(1, 400))
            self.catalog.append(item)
        self.shelves = [Shelf(f"aisle-{k}") for k in range(16)]
        for item in self.catalog:
            self.shelf_for(item).restock(item, 50)
        self.revenue = 0.0
        self.missed = 0

    def shelf_for(self, item):
        return self.shelves[hash(item.sku) % len(self.shelves)]

    def fulfil(self, order):
        for line in order.lines:
            got = self.shelf_for(line.item).take(line.item.sku, line.qty)
            if got < line.qty:
                self.missed += line.qty - got
                self.shelf_for(line.item).restock(line.item, 40)
        self.revenue += order.total()


def simulate(ticks, orders_per_tick, seed=11):
    rng = random.Random(seed)
    wh = Warehouse(rng, 2000)
    best = []
    for tick in range(ticks):
        for c in range(orders_per_tick):
            order = Order(f"cust-{c}", tick)
            for _ in range(rng.randrange(1, 6)):
                order.add(rng.choice(wh.catalog), rng.randrange(1, 4))
            wh.fulfil(order)
        dense = sorted(wh.catalog[tick % 50::50], key=lambda it: it.density)
        best.append(dense[-1].sku)
    return wh.revenue, wh.missed, len(set(best))


if __name__ == "__main__":
    revenue, missed, distinct = simulate(800, 400)
    print(f"revenue {revenue:.0f} missed {missed} distinct-best {distinct}")
