-- A small audience for the closed-loop example: sqlite3 warehouse.db < seed.sql
CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, email TEXT, plan TEXT);
INSERT OR REPLACE INTO users VALUES
  (1, 'ada@example.com', 'pro'),
  (2, 'grace@example.com', 'free'),
  (3, 'alan@example.com', 'pro'),
  (4, 'edsger@example.com', 'free'),
  (5, 'barbara@example.com', 'pro');
