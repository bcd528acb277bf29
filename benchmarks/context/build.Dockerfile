# The small build the benchmark times inside and on the host: three steps that run commands and
# write files. Every RUN names deps-rocker-bench, so that run.py can find the build cache these
# steps leave in the host's engine and prune it.
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin # deps-rocker-bench"]
RUN dd if=/dev/zero of=/blob bs=1M count=16 2>/dev/null # deps-rocker-bench
RUN seq 1 20000 >/numbers && sha256sum /blob /numbers >/sums # deps-rocker-bench
