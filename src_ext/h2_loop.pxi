# The event loop: one thread, no GIL. epoll tells it which sockets are
# readable or writable; it accepts, runs TLS handshakes, feeds received bytes
# to nghttp2, applies the replies Python queued (eventfd wakeup) and writes
# what nghttp2 produced. A connection whose socket is full keeps its bytes in
# `wbuf` and waits for EPOLLOUT before nghttp2 may produce more: that, with
# HTTP/2 flow control, is the write back-pressure.
#
# Like etcd (cmux), a client URL serves plain HTTP beside gRPC: a
# connection's first bytes tell HTTP/2 (its preface) from HTTP/1, whose one
# request (/health, /metrics) Python answers before the connection closes.

cdef const char *H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEF H2_PREFACE_LEN = 24


cdef void conn_mark_dirty(Conn *conn) noexcept nogil:
    if not conn.dirty:
        conn.dirty = 1
        conn.next_dirty = conn.loop.dirty
        conn.loop.dirty = conn


cdef void conn_arm(Conn *conn, uint32_t events) noexcept nogil:
    cdef epoll_event ev
    if conn.armed == events:
        return
    ev.events = events
    ev.data.fd = conn.fd
    epoll_ctl(conn.loop.epfd, EPOLL_CTL_MOD, conn.fd, &ev)
    conn.armed = events


cdef void conn_close(Conn *conn) noexcept nogil:
    """Free a connection now; streams Python holds get EV_CLOSED."""
    cdef Loop *loop = conn.loop
    cdef Stream *st
    while conn.streams != NULL:
        st = conn.streams
        stream_closed_events(st)
        if conn.session != NULL:
            nghttp2_session_set_stream_user_data(conn.session, st.id, NULL)
        stream_free(st)
    if conn.session != NULL:
        nghttp2_session_del(conn.session)
    if conn.ssl != NULL:
        SSL_free(conn.ssl)
    epoll_ctl(loop.epfd, EPOLL_CTL_DEL, conn.fd, NULL)
    close(conn.fd)
    loop.conns[conn.fd] = NULL
    loop.live_conns -= 1
    free(conn.cert_cn)
    free(conn.wbuf.data)
    free(conn.inbuf.data)
    free(conn)


cdef ssize_t conn_write_raw(Conn *conn, const char *data, size_t n) noexcept nogil:
    """Bytes written (0: would block), or -1 when the connection is broken."""
    cdef int r, err
    cdef ssize_t w
    if conn.ssl != NULL:
        r = SSL_write(conn.ssl, data, <int>n)
        if r > 0:
            return r
        err = SSL_get_error(conn.ssl, r)
        if err == SSL_ERROR_WANT_WRITE or err == SSL_ERROR_WANT_READ:
            return 0
        ERR_clear_error()
        return -1
    w = send(conn.fd, data, n, MSG_NOSIGNAL)
    if w >= 0:
        return w
    if errno == EAGAIN or errno == EINTR:
        return 0
    return -1


cdef int conn_drain_wbuf(Conn *conn) noexcept nogil:
    """Write pending bytes: 1 when all are out, 0 when the socket is full, -1 on error."""
    cdef ssize_t w
    while conn.wbuf.len:
        w = conn_write_raw(conn, conn.wbuf.data, conn.wbuf.len)
        if w < 0:
            return -1
        if w == 0:
            return 0
        buf_consume(&conn.wbuf, w)
    return 1


cdef void conn_flush(Conn *conn) noexcept nogil:
    """Write what nghttp2 has to send, as far as the socket takes it."""
    cdef const uint8_t *chunk
    cdef ssize_t n
    cdef int r
    if conn.dead:
        return
    if conn.http1:
        r = conn_drain_wbuf(conn)
        if r < 0 or (r == 1 and conn.closing):
            conn.dead = 1
        else:
            conn_arm(conn, (EPOLLOUT if r == 0 else 0) | (0 if conn.read_eof else EPOLLIN))
        return
    if conn.session == NULL:
        return
    while True:
        r = conn_drain_wbuf(conn)
        if r < 0:
            conn.dead = 1
            return
        if r == 0:
            conn_arm(conn, EPOLLIN | EPOLLOUT)
            return
        while conn.wbuf.len < WRITE_HIGH_WATER:
            n = nghttp2_session_mem_send(conn.session, &chunk)
            if n < 0:
                conn.dead = 1
                return
            if n == 0:
                break
            if buf_append(&conn.wbuf, <const char *>chunk, n) < 0:
                conn.dead = 1
                return
        if conn.wbuf.len == 0:
            break
    conn_arm(conn, EPOLLIN)
    if conn.close_when_sent:
        conn.dead = 1
    if not nghttp2_session_want_read(conn.session) and not nghttp2_session_want_write(conn.session):
        conn.dead = 1


cdef int conn_handshake(Conn *conn) noexcept nogil:
    """Advance the TLS handshake: 1 done, 0 in progress, -1 failed."""
    cdef int r = SSL_do_handshake(conn.ssl)
    cdef int err
    if r == 1:
        conn.handshaking = 0
        conn.cert_cn = peer_common_name(conn.ssl)
        return 1
    err = SSL_get_error(conn.ssl, r)
    if err == SSL_ERROR_WANT_READ:
        conn_arm(conn, EPOLLIN)
        return 0
    if err == SSL_ERROR_WANT_WRITE:
        conn_arm(conn, EPOLLIN | EPOLLOUT)
        return 0
    ERR_clear_error()
    return -1


cdef int conn_sniff(Conn *conn, const char *data, size_t n) noexcept nogil:
    """Bytes of a connection whose protocol is not known yet, or of its HTTP/1
    request: open the HTTP/2 session once the preface is in, or hand the
    HTTP/1 request line to Python once the request head is. -1: drop it."""
    cdef size_t m, i
    cdef char *head
    if conn.http1_asked:
        return 0  # one request per connection; the rest is not read
    if buf_append(&conn.inbuf, data, n) < 0:
        return -1
    head = conn.inbuf.data
    if not conn.http1:
        m = conn.inbuf.len if conn.inbuf.len < H2_PREFACE_LEN else H2_PREFACE_LEN
        if memcmp(head, H2_PREFACE, m) == 0:
            if m < H2_PREFACE_LEN:
                return 0
            if session_open(conn) != 0:
                return -1
            n = conn.inbuf.len
            conn.inbuf.len = 0
            if nghttp2_session_mem_recv(conn.session, <const uint8_t *>head, n) < 0:
                return -1
            return 0
        conn.http1 = 1
    for i in range(3, conn.inbuf.len):
        if memcmp(head + i - 3, b"\r\n\r\n", 4) == 0:
            m = 0
            while head[m] != c'\r':
                m += 1
            conn.http1_asked = 1
            push_call_event_data(conn.loop, EV_HTTP, conn.fd, conn.gen, 0, head, m)
            return 0
    return -1 if conn.inbuf.len > HTTP1_HEAD_LIMIT else 0


cdef void conn_read(Conn *conn) noexcept nogil:
    """Read what the socket has (a bounded amount per wakeup) into nghttp2."""
    cdef char buf[READ_CHUNK]
    cdef ssize_t n
    cdef int r, err, rounds
    for rounds in range(16):
        if conn.ssl != NULL:
            r = SSL_read(conn.ssl, buf, READ_CHUNK)
            if r <= 0:
                err = SSL_get_error(conn.ssl, r)
                if err == SSL_ERROR_WANT_READ or err == SSL_ERROR_WANT_WRITE:
                    return
                ERR_clear_error()
                conn.dead = 1
                return
            n = r
        else:
            n = recv(conn.fd, buf, READ_CHUNK, 0)
            if n == 0:
                if conn.http1_asked:
                    conn.read_eof = 1  # half-closed after its request: answer, then close
                else:
                    conn.dead = 1
                return
            if n < 0:
                if errno != EAGAIN and errno != EINTR:
                    conn.dead = 1
                return
        if conn.session == NULL:
            if conn_sniff(conn, buf, n) < 0:
                conn.dead = 1
                return
            conn_mark_dirty(conn)
            continue
        if nghttp2_session_mem_recv(conn.session, <const uint8_t *>buf, n) < 0:
            conn.dead = 1  # a protocol error: nghttp2 has queued its GOAWAY
            conn_mark_dirty(conn)
            return
        conn_mark_dirty(conn)
        if conn.ssl == NULL and n < READ_CHUNK:
            # The socket is drained: no recv to learn it (EAGAIN). epoll is
            # level-triggered, so what arrives next wakes the loop again.
            return


cdef void loop_accept(Loop *loop, Listener *lis) noexcept nogil:
    cdef int fd, one = 1
    cdef Conn *conn
    cdef Conn **grown
    cdef epoll_event ev
    cdef int i
    while loop.accepting:
        fd = accept4(lis.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)
        if fd < 0:
            if errno == EMFILE or errno == ENFILE:
                # The pending connection stays queued; rather than spin on a
                # listener that stays readable, rest the listeners a while.
                listeners_watch(loop, 0)
                loop.accept_resume_ms = monotonic_ms() + ACCEPT_RETRY_MS
            return
        if fd >= loop.nconns:
            grown = <Conn **>realloc(loop.conns, (fd + 1024) * sizeof(Conn *))
            if grown == NULL:
                close(fd)
                continue
            for i in range(loop.nconns, fd + 1024):
                grown[i] = NULL
            loop.conns = grown
            loop.nconns = fd + 1024
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))  # fails harmlessly on unix
        conn = <Conn *>calloc(1, sizeof(Conn))
        if conn == NULL:
            close(fd)
            continue
        conn.loop = loop
        conn.fd = fd
        loop.next_gen += 1
        conn.gen = loop.next_gen
        conn.armed = EPOLLIN
        ev.events = EPOLLIN
        ev.data.fd = fd
        loop.conns[fd] = conn
        loop.live_conns += 1
        epoll_ctl(loop.epfd, EPOLL_CTL_ADD, fd, &ev)
        if lis.ctx != NULL:
            conn.ssl = SSL_new(lis.ctx)
            if conn.ssl == NULL:
                conn_close(conn)
                continue
            SSL_set_fd(conn.ssl, fd)
            SSL_set_accept_state(conn.ssl)
            conn.handshaking = 1


cdef int64_t monotonic_ms() noexcept nogil:
    return monotonic_us() // 1000


cdef int64_t monotonic_us() noexcept nogil:
    """CLOCK_MONOTONIC, Python's time.monotonic() clock, in microseconds."""
    cdef timespec now
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000000 + now.tv_nsec // 1000


cdef void listeners_watch(Loop *loop, int on) noexcept nogil:
    cdef epoll_event ev
    cdef int i
    for i in range(loop.nlisteners):
        ev.events = EPOLLIN
        ev.data.fd = loop.listeners[i].fd
        epoll_ctl(loop.epfd, EPOLL_CTL_ADD if on else EPOLL_CTL_DEL, loop.listeners[i].fd, &ev)


cdef void loop_goaway(Loop *loop) noexcept nogil:
    """Stop accepting; tell every client no new stream will be served."""
    cdef int i
    cdef Conn *conn
    if loop.accepting and not loop.accept_resume_ms:
        listeners_watch(loop, 0)
    loop.accepting = 0
    for i in range(loop.nconns):
        conn = loop.conns[i]
        if conn != NULL and conn.session != NULL:
            nghttp2_submit_goaway(conn.session, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(conn.session),
                                  NGHTTP2_NO_ERROR, NULL, 0)
            conn_mark_dirty(conn)


cdef void loop_apply_replies(Loop *loop) noexcept nogil:
    cdef Reply *r = replies_take_all(loop)
    cdef Reply *next
    cdef Conn *conn
    cdef Stream *st
    cdef int i
    while r != NULL:
        next = r.next
        if r.kind == R_MESSAGE:
            conn = loop.conns[r.fd] if 0 <= r.fd < loop.nconns else NULL
            st = NULL
            if conn != NULL and conn.gen == r.gen and conn.session != NULL and not conn.dead:
                st = <Stream *>nghttp2_session_get_stream_user_data(conn.session, r.sid)
            if st != NULL:
                stream_queue(st, r.data, r.len, r.owner, r.body, r.bodylen, r.end, r.status,
                             r.msg, r.msglen)
                r.data = NULL
                r.owner = NULL
                r.msg = NULL
        elif r.kind == R_DRAIN:
            conn = loop.conns[r.fd] if 0 <= r.fd < loop.nconns else NULL
            st = NULL
            if conn != NULL and conn.gen == r.gen and conn.session != NULL and not conn.dead:
                st = <Stream *>nghttp2_session_get_stream_user_data(conn.session, r.sid)
            if st != NULL:
                stream_want_drain(st)
            else:
                push_call_event(loop, EV_GONE, r.fd, r.gen, r.sid)  # nothing left to wait for
        elif r.kind == R_HTTP:
            conn = loop.conns[r.fd] if 0 <= r.fd < loop.nconns else NULL
            if conn != NULL and conn.gen == r.gen and not conn.dead:
                if r.sid == 0 and conn.http1:
                    if buf_append(&conn.wbuf, r.data, r.len) < 0:
                        conn.dead = 1
                    conn.closing = 1
                    conn_mark_dirty(conn)
                elif r.sid != 0 and conn.session != NULL:
                    st = <Stream *>nghttp2_session_get_stream_user_data(conn.session, r.sid)
                    if st != NULL:
                        stream_respond_http(st, r.status, r.msg, r.msglen, r.data, r.len)
                        r.data = NULL
                        r.msg = NULL
        elif r.kind == R_GOAWAY:
            loop_goaway(loop)
        elif r.kind == R_CLOSE_ALL:
            for i in range(loop.nconns):
                if loop.conns[i] != NULL:
                    conn_flush(loop.conns[i])
                    conn_close(loop.conns[i])
            loop.dirty = NULL
        elif r.kind == R_EXIT:
            loop.running = 0
        elif r.kind == R_SET_TLS:
            if loop.listeners[r.sid].ctx != NULL:
                SSL_CTX_free(loop.listeners[r.sid].ctx)
            loop.listeners[r.sid].ctx = <SSL_CTX *>r.ctx
        reply_free(loop, r)
        r = next


cdef inline bint is_inline(Loop *loop, Event *ev) noexcept nogil:
    return (ev.kind == EV_REQUEST and ev.method >= 0 and loop.inline[ev.method]
            and names_one_key(<const uint8_t *>ev.data, ev.len))


cdef bint names_one_key(const uint8_t *p, size_t n) noexcept nogil:
    """True if a request has no field 2 but an empty one: a Range of one key,
    no range_end (the inline method's). A range of keys may be long: the loop
    leaves it to a worker and goes on with its I/O. False when unsure."""
    cdef const uint8_t *end = p + n
    cdef uint64_t tag, length
    while p < end:
        if not scan_varint(&p, end, &tag):
            return False
        if tag & 7 == 0:
            if not scan_varint(&p, end, &length):
                return False
        elif tag & 7 == 2:
            if not scan_varint(&p, end, &length) or length > <size_t>(end - p):
                return False
            if tag >> 3 == 2 and length:
                return False
            p += length
        elif tag & 7 == 1 and end - p >= 8:
            p += 8
        elif tag & 7 == 5 and end - p >= 4:
            p += 4
        else:
            return False
    return True


cdef bint scan_varint(const uint8_t **pp, const uint8_t *end, uint64_t *out) noexcept nogil:
    """Read a varint and move past it; False if truncated or too long."""
    cdef const uint8_t *p = pp[0]
    cdef uint64_t value = 0
    cdef int shift = 0
    while p < end and shift < 70:
        value |= <uint64_t>(p[0] & 0x7F) << shift
        shift += 7
        p += 1
        if not p[-1] & 0x80:
            pp[0] = p
            out[0] = value
            return True
    return False


cdef void loop_dispatch(Loop *loop) noexcept nogil:
    """Wake a worker for each event this iteration queued. But while every
    worker waits, requests of inline methods at the head of the queue are
    served here, on the loop's thread, for up to INLINE_BUDGET_US: no worker
    wake-up, no loop wake-up for the reply, no GIL hand-off. A slow one (a
    big LIST) ends the turn and leaves the rest to the workers, which the
    loop's I/O then runs beside."""
    cdef int64_t until = 0
    cdef Event *ev = take_inline(loop)
    while ev != NULL:
        if not until:
            until = monotonic_us() + INLINE_BUDGET_US
        serve_inline(loop, ev)
        event_free(ev)
        ev = take_inline(loop) if monotonic_us() < until else NULL
    wake_owed(loop)
    if until:
        loop_apply_replies(loop)
        loop.served_inline = 1


cdef Event *take_inline(Loop *loop) noexcept nogil:
    """The head of the queue if the loop may serve it (see loop_dispatch)."""
    cdef EventQueue *q = &loop.events
    cdef Event *ev = NULL
    pthread_mutex_lock(&q.lock)
    if (loop.signals_owed and loop.inline_turn != NULL and q.waiting == loop.workers
            and q.head != NULL and is_inline(loop, q.head)):
        ev = q.head
        q.head = ev.next
        if q.head == NULL:
            q.tail = NULL
        ev.next = NULL
        loop.signals_owed -= 1
    pthread_mutex_unlock(&q.lock)
    return ev


cdef void wake_owed(Loop *loop) noexcept nogil:
    """Wake workers for the events the loop queued and did not serve itself:
    one per turn those events make (a worker takes a run of quick ones at
    once), not one per event, since a worker woken for an event another took
    with its own finds nothing and goes back to sleep, two thread switches
    for nothing. Events queued earlier count too: a worker signalled for them
    may not have taken them yet. Signalled after the lock is let go, or the
    woken worker's first step is to wait for it."""
    cdef int turns = 0
    pthread_mutex_lock(&loop.events.lock)
    if loop.signals_owed > 0:
        turns = queued_turns(loop, loop.signals_owed)
        loop.signals_owed = 0
    pthread_mutex_unlock(&loop.events.lock)
    while turns > 0:
        pthread_cond_signal(&loop.events.ready)
        turns -= 1


cdef void loop_flush_dirty(Loop *loop) noexcept nogil:
    cdef Conn *conn
    while loop.dirty != NULL:
        conn = loop.dirty
        loop.dirty = conn.next_dirty
        conn.dirty = 0
        conn_flush(conn)
        if conn.dead:
            conn_close(conn)


cdef void loop_run(Loop *loop) noexcept nogil:
    cdef epoll_event events[MAX_EVENTS]
    cdef int n, i, j, fd
    cdef uint64_t counter
    cdef Conn *conn
    cdef int listener, r
    cdef int64_t spin_end
    loop.thread = pthread_self()
    while loop.running:
        # Events queued since the last dispatch (a closed connection's) wake
        # their workers before the loop sleeps.
        wake_owed(loop)
        # Having just served requests itself, the loop polls for SPIN_US before
        # it sleeps: a client's next request often comes sooner than a
        # wake-up from epoll would (~30% more Ranges/s for one client).
        n = 0
        if loop.served_inline:
            loop.served_inline = 0
            spin_end = monotonic_us() + SPIN_US
            while True:
                n = epoll_wait(loop.epfd, events, MAX_EVENTS, 0)
                if n != 0 or monotonic_us() >= spin_end:
                    break
        if n == 0:
            n = epoll_wait(loop.epfd, events, MAX_EVENTS,
                           ACCEPT_RETRY_MS if loop.accept_resume_ms else -1)
        if loop.accept_resume_ms and monotonic_ms() >= loop.accept_resume_ms:
            loop.accept_resume_ms = 0
            if loop.accepting:
                listeners_watch(loop, 1)
        for i in range(n):
            fd = events[i].data.fd
            if fd == loop.evfd:
                read(loop.evfd, &counter, 8)
                loop_apply_replies(loop)
                continue
            listener = -1
            for j in range(loop.nlisteners):
                if loop.listeners[j].fd == fd:
                    listener = j
            if listener >= 0:
                loop_accept(loop, &loop.listeners[listener])
                continue
            conn = loop.conns[fd] if fd < loop.nconns else NULL
            if conn == NULL or conn.dead:
                continue
            if conn.handshaking:
                r = conn_handshake(conn)
                if r < 0:
                    conn.dead = 1
                    conn_mark_dirty(conn)
                    continue
                if r == 0:
                    continue
            if events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP):
                conn_read(conn)
            conn_mark_dirty(conn)
        loop_dispatch(loop)
        loop_flush_dirty(loop)
