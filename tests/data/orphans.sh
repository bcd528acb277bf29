#!/bin/sh
# Leaves orphans behind: each subshell exits at once, and its sleep, reparented to PID 1,
# exits shortly after. Only an init that reaps them keeps them from staying zombies.
for _ in 1 2 3 4 5; do
    (sleep 0.2 &)
done
sleep 1.5
zombies=0
for stat in /proc/[0-9]*/stat; do
    state=$(sed 's/^.*) \(.\).*$/\1/' "$stat" 2>/dev/null) || continue
    [ "$state" = Z ] && zombies=$((zombies + 1))
done
echo "pid1=$(cat /proc/1/comm)"
echo "zombies=$zombies"
