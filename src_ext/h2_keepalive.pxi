# Keepalive enforcement, as grpc-go's server does it under etcd's policy
# (embed/etcd.go: MinTime = --grpc-keepalive-min-time, 5 s by default;
# PermitWithoutStream false): a client PING is a strike when it comes less
# than 5 s after the previous one while the connection has calls open, or
# less than 2 h after it while it has none; a DATA frame sent since the
# previous PING clears the strikes (the client's BDP pings follow our data).
# Past 2 strikes the client gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
# and the connection is closed once that is written.

DEF PING_MIN_INTERVAL_MS = 5000
DEF PING_IDLE_MIN_INTERVAL_MS = 7200000
DEF MAX_PING_STRIKES = 2


cdef void keepalive_init(Conn *conn) noexcept nogil:
    conn.last_ping_ms = -1  # no PING yet: the first is never a strike


cdef void keepalive_data_sent(Conn *conn) noexcept nogil:
    conn.data_since_ping = 1


cdef void keepalive_ping(Conn *conn) noexcept nogil:
    """A PING (not an ACK) from the client: count it against the policy."""
    cdef int64_t now = monotonic_ms()
    cdef int64_t last = conn.last_ping_ms
    cdef int64_t least = PING_MIN_INTERVAL_MS if conn.streams != NULL else PING_IDLE_MIN_INTERVAL_MS
    conn.last_ping_ms = now
    if conn.data_since_ping:
        conn.data_since_ping = 0
        conn.ping_strikes = 0
        return
    if last >= 0 and now - last < least:
        conn.ping_strikes += 1
    if conn.ping_strikes > MAX_PING_STRIKES and not conn.close_when_sent:
        nghttp2_submit_goaway(conn.session, NGHTTP2_FLAG_NONE,
                              nghttp2_session_get_last_proc_stream_id(conn.session),
                              NGHTTP2_ENHANCE_YOUR_CALM, <const uint8_t *>"too_many_pings", 14)
        conn.close_when_sent = 1
