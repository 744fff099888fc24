"""PostgreSQL warehouse -> Redis hashes, against real servers
(tests/integration/pgredis.py starts them)."""
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pgredis  # noqa: E402
from bfhelp import Project  # noqa: E402

N = 500


class RedisSyncTest(unittest.TestCase):
    db_counter = 0

    @classmethod
    def setUpClass(cls):
        cls.pg = pgredis.shared_pg()
        cls.redis = pgredis.shared_redis()

    def setUp(self):
        RedisSyncTest.db_counter += 1
        self.rdb = RedisSyncTest.db_counter  # a Redis database per test
        self.redis.cli("FLUSHDB", db=self.rdb)
        self.wh = self.pg.create_db("wh")
        self.pg.psql("CREATE TABLE users (id bigint PRIMARY KEY, email text, plan text, ltv float8,"
                     " vip bool, note text)", db=self.wh)
        self.pg.psql(f"INSERT INTO users SELECT i, 'u' || i || '@example.com',"
                     f" CASE WHEN i % 3 = 0 THEN 'pro' ELSE 'free' END, i * 0.5, i % 10 = 0, 'x'"
                     f" FROM generate_series(1, {N}) i", db=self.wh)
        self.env = {"PG_DSN": self.pg.dsn(self.wh)}
        self.projects = []

    def tearDown(self):
        for p in self.projects:
            p.cleanup()

    def project(self, dest_extra="", mode="mirror", url=None):
        url = url or self.redis.url(self.rdb)
        p = Project(f"""version: 1
warehouses:
  pg: {{type: postgres, dsn: "${{PG_DSN}}"}}
models:
  users:
    warehouse: pg
    sql: SELECT id, email, plan, ltv, vip FROM users
    primary_key: id
destinations:
  features: {{type: redis, url: "{url}", prefix: "user:"{dest_extra}}}
syncs:
  s:
    model: users
    destination: features
    mode: {mode}
    match: {{user_id: id}}
    fields: {{email: email, plan: plan, ltv: ltv, vip: vip}}
    constants: {{source: backflow}}
""")
        self.projects.append(p)
        return p

    def expected(self):
        out = {}
        for id_, email, plan, ltv, vip in self.pg.psql("SELECT id, email, plan, ltv, vip FROM users",
                                                        db=self.wh):
            h = {"source": "backflow"}
            if email is not None:
                h["email"] = email
            if plan is not None:
                h["plan"] = plan
            if ltv is not None:
                h["ltv"] = repr(float(ltv)).rstrip("0").rstrip(".") if "." in repr(float(ltv)) else ltv
            if vip is not None:
                h["vip"] = "true" if vip == "t" else "false"
            out[f"user:{id_}"] = h
        return out

    def actual(self):
        got = {}
        for k in self.redis.keys("*", db=self.rdb):
            h = self.redis.hgetall(k, db=self.rdb)
            if "ltv" in h:
                h["ltv"] = repr(float(h["ltv"])).rstrip("0").rstrip(".") if "." in repr(float(h["ltv"])) else h["ltv"]
            got[k] = h
        return got

    def test_pg_to_redis_mirror_exact(self):
        p = self.project()
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.redis.keys("*", db=self.rdb)), N)
        self.assertEqual(self.actual(), self.expected())

        self.pg.psql("UPDATE users SET plan = 'enterprise' WHERE id % 25 = 0;"
                     " UPDATE users SET email = NULL WHERE id = 4;"
                     " DELETE FROM users WHERE id % 9 = 0;"
                     " UPDATE users SET note = 'unmapped change' WHERE id % 2 = 0;"
                     f" INSERT INTO users (id, email, plan, ltv, vip) SELECT i, 'n' || i, 'free', 1.25, false"
                     f" FROM generate_series({N + 1}, {N + 30}) i", db=self.wh)
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.actual(), self.expected())
        self.assertNotIn("email", self.redis.hgetall("user:4", db=self.rdb))
        runs = json.loads(p.run("runs", "s", "--json", env=self.env).stdout)["runs"]
        self.assertEqual(runs[0]["removed"], len([i for i in range(1, N + 1) if i % 9 == 0]))
        self.assertEqual(runs[0]["added"], 30)
        self.assertEqual(runs[0]["changed"], len([i for i in range(1, N + 1) if i % 25 == 0 and i % 9 != 0]) + 1)

    def test_ttl(self):
        p = self.project(dest_extra=", ttl: 1h", mode="upsert")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 0, r.stderr)
        ttl = int(self.redis.cli("TTL", "user:1", db=self.rdb))
        self.assertGreater(ttl, 3500)
        self.assertLessEqual(ttl, 3600)

    def test_wrongtype_key_is_rejected_others_written(self):
        self.redis.cli("SET", "user:7", "a string, not a hash", db=self.rdb)
        p = self.project(mode="upsert")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(len(self.redis.keys("*", db=self.rdb)), N)
        rc, doc, err = p.run_json("errors", "s", env=self.env)
        text = json.dumps(doc)
        self.assertIn("WRONGTYPE", text)
        self.assertNotIn("u7@example.com", text)

    def test_update_mode_only_touches_existing(self):
        self.redis.cli("HSET", "user:3", "plan", "old", db=self.rdb)
        p = self.project(mode="update")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 1, r.stderr)  # the others have no hash to update
        self.assertEqual(self.redis.keys("*", db=self.rdb), ["user:3"])
        self.assertEqual(self.redis.hgetall("user:3", db=self.rdb)["plan"], "pro")

    def test_redis_down_stops_run_and_nothing_is_lost(self):
        port = pgredis.free_port()
        p = self.project(url=f"redis://127.0.0.1:{port}/0")
        r = p.run("run", "s", env=self.env)
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertIn("redis", r.stderr)
        server = pgredis.RedisServer()
        server.port = port
        server.proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", server.dir],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pgredis.wait_until(server.ping, 30, "redis")
            r = p.run("run", "s", env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(server.keys("*")), N)
        finally:
            server.destroy()

    def test_password_auth_and_not_printed(self):
        port = pgredis.free_port()
        server = pgredis.RedisServer()
        server.port = port
        server.proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                        "--appendonly", "no", "--dir", server.dir,
                                        "--requirepass", "R1ghtPassw0rd"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pgredis.wait_until(lambda: server.cli("-a", "R1ghtPassw0rd", "--no-auth-warning", "PING",
                                                  check=False) == "PONG", 30, "redis")
            p = self.project(url=f"redis://:Wr0ngSecretPw@127.0.0.1:{port}/2")
            r = p.run("run", "s", env=self.env)
            self.assertEqual(r.returncode, 4, r.stderr)
            self.assertNotIn("Wr0ngSecretPw", r.stdout + r.stderr)
            self.assertIn("redis://:***@127.0.0.1", r.stderr)
            p = self.project(url=f"redis://:R1ghtPassw0rd@127.0.0.1:{port}/2")
            r = p.run("run", "s", env=self.env)
            self.assertEqual(r.returncode, 0, r.stderr)
            n = server.cli("-a", "R1ghtPassw0rd", "--no-auth-warning", "DBSIZE", db=2)
            self.assertEqual(int(n), N)
        finally:
            server.destroy()

if __name__ == "__main__":
    unittest.main()
