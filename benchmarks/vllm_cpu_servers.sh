#!/usr/bin/env bash
# Serves the toy teacher and student of a `make demo` run (TESSY_HOME, default .tessy) with vLLM's
# OpenAI-compatible server on CPU, for the `openai` backend: teacher on port 8101, student on 8102, one
# OpenMP thread each, prompt-cache counts in the usage. Waits until both answer /health, then returns;
# their logs and pids are in benchmarks/servers/. Stop them with: kill $(cat benchmarks/servers/*.pid)
#
#   bash benchmarks/vllm_cpu_servers.sh
#   .venv/bin/python benchmarks/cooperation_cost.py --backend openai --settings examples/openai_vllm_cpu_servers.json ...
set -euo pipefail
home="${TESSY_HOME:-.tessy}"
dir=benchmarks/servers
mkdir -p "$dir"
for spec in teacher:8101 student:8102; do
  role="${spec%%:*}" port="${spec##*:}"
  model="$home/${role}_model/all"
  [ -f "$model/config.json" ] || { echo "$model: no model here; run make demo first" >&2; exit 1; }
  VLLM_NO_USAGE_STATS=1 OMP_NUM_THREADS=1 nohup .venv/bin/python -m vllm.entrypoints.openai.api_server \
    --model "$model" --served-model-name "$role" --port "$port" --dtype float32 --block-size 32 \
    --enforce-eager --max-model-len 1024 --kv-cache-memory-bytes 268435456 --enable-prompt-tokens-details \
    > "$dir/$role.log" 2>&1 &
  echo $! > "$dir/$role.pid"
done
for port in 8101 8102; do
  for _ in $(seq 1 120); do
    curl -sf "localhost:$port/health" > /dev/null && continue 2
    sleep 1
  done
  echo "the server on port $port did not come up in 120 s; see $dir/*.log" >&2
  exit 1
done
echo "teacher on http://localhost:8101, student on http://localhost:8102"
