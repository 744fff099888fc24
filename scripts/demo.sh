#!/usr/bin/env bash
# The demo: an example project on the embedded SQLite warehouse, synced to a
# JSON Lines file, changed, and synced again. Run by `make demo`.
set -euo pipefail
bin=$(realpath "${1:-build/backflow}")
dir=build/demo
rm -rf "$dir"
echo "== backflow init $dir"
"$bin" init "$dir" --rows 5000
echo
echo "== backflow validate"
"$bin" -p "$dir" validate
echo
echo "== run 1: every customer is new"
"$bin" -p "$dir" plan customers_to_file --sample 2
"$bin" -p "$dir" run customers_to_file
echo
echo "== run 2: nothing changed, nothing is sent"
"$bin" -p "$dir" run customers_to_file
echo
echo "== changing the warehouse: 50 upgrades, 20 churned customers deleted, 10 new sign-ups"
sqlite3 "$dir/warehouse.db" <<'SQL'
UPDATE users SET plan = 'enterprise', ltv = ltv + 1000 WHERE id % 100 = 0;
DELETE FROM users WHERE id > 4980;
INSERT INTO users (id, email, first_name, last_name, country, plan, ltv)
  SELECT 6000 + value, 'new' || value || '@example.com', 'New', 'Customer', 'US', 'free', 0
  FROM (WITH RECURSIVE n(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM n WHERE value < 10) SELECT value FROM n);
SQL
echo
echo "== run 3: exactly the changes"
"$bin" -p "$dir" plan customers_to_file --sample 0
set +e
"$bin" -p "$dir" run customers_to_file
status=$?
set -e
echo "(exit status $status: 1 means the run finished and some rows were rejected)"
echo
echo "== backflow errors customers_to_file"
"$bin" -p "$dir" errors customers_to_file
echo
echo "== backflow runs"
"$bin" -p "$dir" runs
echo
echo "The destination file: $dir/out/customers.jsonl ($(wc -l < "$dir/out/customers.jsonl") lines)"
tail -n 2 "$dir/out/customers.jsonl"
echo
echo "The state holds no personal data: grep for an email in $dir/.backflow finds $(grep -rc 'example.com' "$dir/.backflow" | awk -F: '{s+=$2} END {print s+0}') matches."
