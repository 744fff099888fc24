"""Values arrive as they are (issue 16), against a real PostgreSQL source:
floats in their shortest round-trip form (1882.6, not 1882.5999999999999) in
Redis as in JSON; jsonb/json as JSON values and arrays as JSON arrays at a
webhook (not escaped strings or "{a,b}"); numeric keeps its scale."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import WEBHOOK_SECRET, Project  # noqa: E402
from webhook_receiver import Receiver  # noqa: E402

TABLE = """
CREATE TABLE items (
  id bigint PRIMARY KEY, price float8, amount numeric(10,2), doc jsonb, raw json,
  tags text[], nums int[], grid float8[], flags bool[], docs jsonb[], odd text[], at timestamptz);
INSERT INTO items VALUES
  (1, 1882.6, 19.90, '{"a": [1, 2.5, "x"], "b": null}', '[1, "two"]',
   '{a,b}', '{1,NULL,3}', '{{0.1,0.2},{1e300,-2}}', '{t,f}', ARRAY['{"k": 1}'::jsonb],
   ARRAY['with,comma', 'with "quote"', 'back\\slash', 'NULL', '', ' sp '], '2024-05-01 12:00:00+00'),
  (2, 0.1, 100, 'true', '"s"', '{}', NULL, '{}', '{}', '{}', '{}', NULL);
"""


class Values(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()
        cls.redis = pgredis.shared_redis()

    def setUp(self):
        self.wh = self.pg.create_db("vals")
        self.pg.psql(TABLE, db=self.wh)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}

    def project(self, dest):
        p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  items:
    warehouse: pg
    sql: SELECT * FROM items
    primary_key: id
destinations:
{dest}
syncs:
  s:
    model: items
    destination: d
    match: {{item_id: id}}
    fields: {{price: price, amount: amount, doc: doc, raw: raw, tags: tags, nums: nums,
              grid: grid, flags: flags, docs: docs, odd: odd, at: at}}
""")
        self.addCleanup(p.cleanup)
        return p

    def test_webhook_gets_json_values_and_arrays(self):
        recv = Receiver.start(WEBHOOK_SECRET)
        self.addCleanup(recv.stop)
        p = self.project(f'  d: {{type: webhook, url: "{recv.url}", signing_secret: '
                         f'"{WEBHOOK_SECRET}"}}')
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        store = {json.loads(k)["item_id"] if k.startswith("{") else k: v
                 for k, v in recv.store().items()}
        one = next(v for k, v in store.items() if "1" in str(k) and v["amount"] == "19.90")
        self.assertEqual(one["price"], 1882.6)
        self.assertEqual(one["amount"], "19.90")  # numeric keeps its scale, as text
        self.assertEqual(one["doc"], {"a": [1, 2.5, "x"], "b": None})
        self.assertEqual(one["raw"], [1, "two"])
        self.assertEqual(one["tags"], ["a", "b"])
        self.assertEqual(one["nums"], [1, None, 3])
        self.assertEqual(one["grid"], [[0.1, 0.2], [1e300, -2]])
        self.assertEqual(one["flags"], [True, False])
        self.assertEqual(one["docs"], [{"k": 1}])
        self.assertEqual(one["odd"], ["with,comma", 'with "quote"', "back\\slash", "NULL", "",
                                      " sp "])
        self.assertEqual(one["at"], "2024-05-01T12:00:00Z")
        two = next(v for v in store.values() if v["amount"] == "100.00")
        self.assertEqual(two["doc"], True)
        self.assertEqual(two["raw"], "s")
        self.assertEqual(two["tags"], [])
        self.assertIsNone(two["nums"])
        self.assertEqual(two["price"], 0.1)

    def test_redis_gets_the_shortest_float_and_json_text(self):
        rdb = 9
        self.redis.cli("FLUSHDB", db=rdb)
        p = self.project(f'  d: {{type: redis, url: "{self.redis.url(rdb)}", prefix: "item:"}}')
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        h = self.redis.hgetall("item:1", db=rdb)
        self.assertEqual(h["price"], "1882.6")
        self.assertEqual(h["amount"], "19.90")
        self.assertEqual(json.loads(h["doc"]), {"a": [1, 2.5, "x"], "b": None})
        self.assertEqual(json.loads(h["tags"]), ["a", "b"])
        self.assertEqual(json.loads(h["grid"]), [[0.1, 0.2], [1e300, -2]])
        self.assertEqual(self.redis.hgetall("item:2", db=rdb)["price"], "0.1")


if __name__ == "__main__":
    unittest.main()
