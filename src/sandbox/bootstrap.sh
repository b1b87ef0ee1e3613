# Runs first in every job container, as: sh -c "$THIS" cb <run command...>
# Its stdin carries, in order: a nonce line; each file as "<size> <name>\n" then exactly <size>
# bytes; a line "-"; then the job's own stdin. This puts code in without any host mount.
IFS= read -r nonce || exit 120
while IFS=' ' read -r size name; do
  [ "$size" = - ] && break
  if [ "$size" -gt 0 ]; then
    dd bs="$size" count=1 iflag=fullblock of="$name" status=none || exit 121
  else
    : > "$name" || exit 121
  fi
done
"$@"
code=$?
# Nothing the job started outlives it, and nothing can write after the report below.
kill -9 -1 2>/dev/null
peak=0
{ read -r peak < /sys/fs/cgroup/memory/memory.max_usage_in_bytes; } 2>/dev/null \
  || { read -r peak < /sys/fs/cgroup/memory.peak; } 2>/dev/null
cpu=0
if ! { read -r cpu < /sys/fs/cgroup/cpuacct/cpuacct.usage; } 2>/dev/null; then
  while read -r key value; do
    [ "$key" = usage_usec ] && cpu=${value}000
  done < /sys/fs/cgroup/cpu.stat 2>/dev/null
fi
printf '\036%s %s %s %s\n' "$nonce" "$code" "$peak" "$cpu" >&2
exit "$code"
