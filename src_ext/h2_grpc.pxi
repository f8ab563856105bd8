# gRPC over one HTTP/2 stream: request headers checked the way grpc-go
# checks them, length-prefixed messages assembled from DATA frames, and
# responses sent as HEADERS, DATA (through a deferred data provider, so
# nghttp2's flow control paces them) and trailers with grpc-status and a
# percent-encoded grpc-message.

DEF SHAPE_UNARY = 0
DEF SHAPE_SERVER_STREAM = 1
DEF SHAPE_EACH_MESSAGE = 2
DEF SHAPE_SESSION = 3

DEF GRPC_OK = 0
DEF GRPC_UNKNOWN = 2
DEF GRPC_RESOURCE_EXHAUSTED = 8
DEF GRPC_UNIMPLEMENTED = 12
DEF GRPC_INTERNAL = 13

DEF PREFIX = 5  # gRPC message prefix: 1 byte compressed flag, 4 bytes big-endian length


cdef Stream *stream_new(Conn *conn, int32_t sid) noexcept nogil:
    cdef Stream *st = <Stream *>calloc(1, sizeof(Stream))
    if st == NULL:
        return NULL
    st.conn = conn
    st.id = sid
    st.method = -1
    st.deadline_us = -1
    st.next = conn.streams
    if conn.streams != NULL:
        conn.streams.prev = st
    conn.streams = st
    return st


cdef void stream_free(Stream *st) noexcept nogil:
    cdef OutMsg *m
    cdef Conn *conn = st.conn
    if st.prev != NULL:
        st.prev.next = st.next
    else:
        conn.streams = st.next
    if st.next != NULL:
        st.next.prev = st.prev
    while st.out_head != NULL:
        m = st.out_head
        st.out_head = m.next
        out_free(conn.loop, m)
    free(st.path)
    free(st.token)
    free(st.encoding)
    free(st.content_type)
    free(st.inbuf.data)
    free(st.msg)
    free(st)


cdef int buf_append(Buf *b, const char *data, size_t n) noexcept nogil:
    cdef size_t cap
    cdef char *grown
    if b.len + n > b.cap:
        cap = b.cap * 2 if b.cap else 256
        while cap < b.len + n:
            cap *= 2
        grown = <char *>realloc(b.data, cap)
        if grown == NULL:
            return -1
        b.data = grown
        b.cap = cap
    memcpy(b.data + b.len, data, n)
    b.len += n
    return 0


cdef void buf_consume(Buf *b, size_t n) noexcept nogil:
    if n >= b.len:
        b.len = 0
    else:
        memmove(b.data, b.data + n, b.len - n)
        b.len -= n


cdef int push_event(Stream *st, int kind, const char *data, size_t n) noexcept nogil:
    cdef Event *ev = <Event *>calloc(1, sizeof(Event))
    if ev == NULL:
        return -1
    ev.kind = kind
    ev.fd = st.conn.fd
    ev.gen = st.conn.gen
    ev.sid = st.id
    ev.method = st.method
    ev.deadline_us = st.deadline_us
    if kind != EV_DRAINED and kind != EV_GONE:
        # Workers take events concurrently; the sequence lets Python run a
        # call's steps in the order the client sent them.
        ev.seq = st.seq
        st.seq += 1
    if data != NULL:
        ev.data = dup_bytes(data, n)
        ev.len = n
    if kind == EV_REQUEST or kind == EV_OPEN:
        ev.token = dup_bytes(st.token, strlen(st.token)) if st.token != NULL else NULL
        ev.cert_cn = (
            dup_bytes(st.conn.cert_cn, strlen(st.conn.cert_cn)) if st.conn.cert_cn != NULL else NULL
        )
    events_push(st.conn.loop, ev)
    return 0


cdef char *percent_encode(const char *text, size_t n, size_t *outlen) noexcept nogil:
    """grpc-message's encoding: bytes outside printable ASCII, and '%', as %XX."""
    cdef const char *hexdigits = "0123456789ABCDEF"
    cdef char *out = <char *>malloc(3 * n + 1)
    cdef size_t i, j = 0
    cdef unsigned char c
    if out == NULL:
        return NULL
    for i in range(n):
        c = <unsigned char>text[i]
        if c < 0x20 or c > 0x7E or c == c'%':
            out[j] = c'%'
            out[j + 1] = hexdigits[c >> 4]
            out[j + 2] = hexdigits[c & 15]
            j += 3
        else:
            out[j] = <char>c
            j += 1
    out[j] = 0
    outlen[0] = j
    return out


cdef void stream_fail(Stream *st, int status, const char *text) noexcept nogil:
    """End a call from the loop with `status` (no Python involved)."""
    cdef size_t n = 0
    cdef char *msg
    if st.finished:
        return
    msg = percent_encode(text, strlen(text), &n)
    stream_queue(st, NULL, 0, NULL, NULL, 0, 1, status, msg, n)


cdef void stream_headers_done(Stream *st) noexcept nogil:
    """The request headers are in: find the method and refuse what grpc-go refuses."""
    cdef Loop *loop = st.conn.loop
    cdef int i
    cdef char text[512]
    if st.get and (st.bad_content_type or st.content_type == NULL):
        # A plain HTTP GET (curl /health over h2): etcd serves these beside gRPC.
        st.http = 1
        st.dispatched = 1
        snprintf(text, sizeof(text), "GET %.*s HTTP/2", <int>st.pathlen,
                 st.path if st.path != NULL else <char *>"")
        push_call_event_data(loop, EV_HTTP, st.conn.fd, st.conn.gen, st.id, text, strlen(text))
        return
    if st.bad_timeout:
        # grpc-go (etcd 3.4's) refuses the headers: it resets the stream.
        st.dispatched = st.finished = 1
        nghttp2_submit_rst_stream(st.conn.session, NGHTTP2_FLAG_NONE, st.id, NGHTTP2_PROTOCOL_ERROR)
        conn_mark_dirty(st.conn)
        return
    if st.bad_content_type or st.content_type == NULL:
        snprintf(text, sizeof(text), "transport: received unexpected content-type \"%s\"",
                 st.content_type if st.content_type != NULL else <char *>"")
        stream_fail(st, GRPC_INTERNAL, text)
        return
    if st.path == NULL:
        stream_fail(st, GRPC_UNIMPLEMENTED, "malformed method name: \"\"")
        return
    for i in range(loop.nmethods):
        if loop.pathlens[i] == st.pathlen and memcmp(loop.paths[i], st.path, st.pathlen) == 0:
            st.method = i
            st.shape = loop.shapes[i]
            break
    if st.method < 0:
        st.dispatched = 1
        push_event(st, EV_UNKNOWN, st.path, st.pathlen)
        return
    if st.encoding != NULL:
        snprintf(text, sizeof(text),
                 "grpc: Decompressor is not installed for grpc-encoding \"%s\"", st.encoding)
        stream_fail(st, GRPC_UNIMPLEMENTED, text)
        return
    if st.shape == SHAPE_SESSION or st.shape == SHAPE_EACH_MESSAGE:
        st.python_open = 1
        push_event(st, EV_OPEN, NULL, 0)


cdef void stream_data(Stream *st, const uint8_t *data, size_t n) noexcept nogil:
    """DATA bytes of a call: hand each complete message to Python."""
    cdef const unsigned char *p
    cdef uint32_t length
    cdef char text[160]
    if st.finished or st.method < 0 or st.http or (st.dispatched and st.shape <= SHAPE_SERVER_STREAM):
        return  # refused, or a unary call that already has its message
    if buf_append(&st.inbuf, <const char *>data, n) < 0:
        stream_fail(st, GRPC_RESOURCE_EXHAUSTED, "out of memory")
        return
    while st.inbuf.len >= PREFIX and not st.finished:
        p = <const unsigned char *>st.inbuf.data
        length = (<uint32_t>p[1] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 8) | p[4]
        if length > st.conn.loop.max_recv:
            snprintf(text, sizeof(text), "grpc: received message larger than max (%u vs. %u)",
                     length, st.conn.loop.max_recv)
            stream_fail(st, GRPC_RESOURCE_EXHAUSTED, text)
            return
        if p[0] == 1:
            stream_fail(st, GRPC_INTERNAL,
                        "grpc: compressed flag set with identity or empty encoding")
            return
        if p[0] > 1:
            snprintf(text, sizeof(text), "grpc: received unexpected payload format %u", p[0])
            stream_fail(st, GRPC_INTERNAL, text)
            return
        if st.inbuf.len < PREFIX + length:
            return
        push_event(st, EV_REQUEST, st.inbuf.data + PREFIX, length)
        buf_consume(&st.inbuf, PREFIX + length)
        if st.shape <= SHAPE_SERVER_STREAM:
            st.dispatched = 1
            return


cdef void stream_remote_end(Stream *st) noexcept nogil:
    """The client half-closed the call."""
    if st.finished or st.method < 0:
        return
    if st.shape <= SHAPE_SERVER_STREAM:
        if not st.dispatched:
            # grpc-go's recvMsg: no message at all is io.EOF, a cut one io.ErrUnexpectedEOF.
            if st.inbuf.len:
                stream_fail(st, GRPC_INTERNAL, "unexpected EOF")
            else:
                stream_fail(st, GRPC_UNKNOWN, "EOF")
        return
    if st.python_open:
        push_event(st, EV_HALF_CLOSE, NULL, 0)


cdef nghttp2_nv make_nv(const char *name, const char *value, size_t valuelen,
                        int copy_value) noexcept nogil:
    cdef nghttp2_nv nv
    nv.name = <uint8_t *>name
    nv.namelen = strlen(name)
    nv.value = <uint8_t *>value
    nv.valuelen = valuelen
    nv.flags = NGHTTP2_NV_FLAG_NO_COPY_NAME
    if not copy_value:
        nv.flags |= NGHTTP2_NV_FLAG_NO_COPY_VALUE
    return nv


cdef int status_nvs(Stream *st, nghttp2_nv *nva, char *digits) noexcept nogil:
    """grpc-status and grpc-message (when there is one) into nva; their count."""
    snprintf(digits, 12, "%d", st.status)
    nva[0] = make_nv("grpc-status", digits, strlen(digits), 1)
    if st.msglen:
        nva[1] = make_nv("grpc-message", st.msg, st.msglen, 1)
        return 2
    return 1


cdef ssize_t read_response(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                           size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                           void *user_data) noexcept nogil:
    """nghttp2's data provider: how many of the queued bytes the next DATA frame
    carries (`send_data` writes them, NO_COPY), then the trailers."""
    cdef Stream *st = <Stream *>source.ptr
    cdef size_t n = st.out_bytes if st.out_bytes < length else length
    cdef nghttp2_nv nva[2]
    cdef char digits[12]
    if n:
        data_flags[0] |= NGHTTP2_DATA_FLAG_NO_COPY
    if n == st.out_bytes:  # this frame takes all that is queued
        if st.finished and st.http:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF
        elif st.finished:
            data_flags[0] |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM
            nghttp2_submit_trailer(session, stream_id, nva, status_nvs(st, nva, digits))
        elif n == 0:
            st.deferred = 1
            return NGHTTP2_ERR_DEFERRED
    return n


cdef ssize_t send_frame_direct(Stream *st, const uint8_t *framehd, size_t length) noexcept nogil:
    """Write a DATA frame (header, then `length` bytes of the stream's queued
    messages) with one sendmsg: the bytes the socket took (0 when full), or
    -1 when the connection is broken."""
    cdef iovec iov[SEND_IOV_MAX]
    cdef msghdr msg
    cdef OutMsg *m = st.out_head
    cdef size_t n, off
    cdef int count = 1
    cdef ssize_t w
    iov[0].iov_base = <void *>framehd
    iov[0].iov_len = 9
    off = m.off
    while length and count < SEND_IOV_MAX:
        n = m.len - off
        if n > length:
            n = length
        iov[count].iov_base = <void *>(m.data + off)
        iov[count].iov_len = n
        count += 1
        length -= n
        m = m.next
        off = m.off if m != NULL else 0
    memset(&msg, 0, sizeof(msg))
    msg.msg_iov = iov
    msg.msg_iovlen = count
    w = sendmsg(st.conn.fd, &msg, MSG_NOSIGNAL)
    if w >= 0:
        return w
    if errno == EAGAIN or errno == EINTR:
        return 0
    return -1


cdef int send_data(nghttp2_session *session, nghttp2_frame *frame, const uint8_t *framehd,
                   size_t length, nghttp2_data_source *source, void *user_data) noexcept nogil:
    """nghttp2's NO_COPY sender: a DATA frame's 9-byte header and `length` queued
    bytes straight into the connection's write buffer (one copy of a response
    on the loop, not two through nghttp2's frame buffer)."""
    cdef Stream *st = <Stream *>source.ptr
    cdef Conn *conn = st.conn
    cdef OutMsg *m
    cdef size_t n
    cdef ssize_t sent = 0
    if conn.wbuf.len >= WRITE_HIGH_WATER:
        return NGHTTP2_ERR_WOULDBLOCK  # nghttp2 asks again once wbuf is written
    if conn.ssl == NULL and conn.wbuf.len == 0:
        # Nothing queued before it: the frame goes to the socket from where it
        # is, and only what the socket does not take is copied to wbuf.
        sent = send_frame_direct(st, framehd, length)
        if sent < 0:
            return NGHTTP2_ERR_CALLBACK_FAILURE
    if sent < 9:
        if buf_append(&conn.wbuf, <const char *>framehd + sent, 9 - sent) < 0:
            return NGHTTP2_ERR_CALLBACK_FAILURE
        sent = 0
    else:
        sent -= 9
    while length:
        m = st.out_head
        n = m.len - m.off
        if n > length:
            n = length
        if <size_t>sent >= n:
            sent -= n
        else:
            if buf_append(&conn.wbuf, m.data + m.off + sent, n - sent) < 0:
                return NGHTTP2_ERR_CALLBACK_FAILURE
            sent = 0
        m.off += n
        length -= n
        st.out_bytes -= n
        if m.off == m.len:
            st.out_head = m.next
            if st.out_head == NULL:
                st.out_tail = NULL
            out_free(conn.loop, m)
    keepalive_data_sent(conn)
    if st.drain_wanted and st.out_bytes <= DRAIN_LOW_WATER:
        st.drain_wanted = 0
        push_event(st, EV_DRAINED, NULL, 0)
    return 0


cdef void stream_want_drain(Stream *st) noexcept nogil:
    """EV_DRAINED now if little is queued, else once the data provider has sent enough."""
    if st.out_bytes <= DRAIN_LOW_WATER:
        push_event(st, EV_DRAINED, NULL, 0)
    else:
        st.drain_wanted = 1


cdef void push_call_event(Loop *loop, int kind, int fd, uint32_t gen, int32_t sid) noexcept nogil:
    """An event about a call that needs no stream state (any thread)."""
    push_call_event_data(loop, kind, fd, gen, sid, NULL, 0)


cdef void push_call_event_data(Loop *loop, int kind, int fd, uint32_t gen, int32_t sid,
                               const char *data, size_t n) noexcept nogil:
    cdef Event *ev = <Event *>calloc(1, sizeof(Event))
    if ev == NULL:
        return
    ev.kind = kind
    ev.fd = fd
    ev.gen = gen
    ev.sid = sid
    ev.method = -1
    ev.deadline_us = -1
    if data != NULL:
        ev.data = dup_bytes(data, n)
        ev.len = n
    events_push(loop, ev)


cdef void stream_closed_events(Stream *st) noexcept nogil:
    """A stream is going away: wake whoever in Python waits on it."""
    if st.drain_wanted:
        push_event(st, EV_GONE, NULL, 0)
    if st.python_open:
        push_event(st, EV_CLOSED, NULL, 0)


cdef int out_append(Stream *st, const char *data, size_t n, void *owner) noexcept nogil:
    """Queue n bytes at data (malloc'd, or inside `owner`): 0, or -1 out of memory."""
    cdef OutMsg *m = <OutMsg *>calloc(1, sizeof(OutMsg))
    if m == NULL:
        return -1
    m.data = data
    m.len = n
    m.owner = owner
    if st.out_tail == NULL:
        st.out_head = m
    else:
        st.out_tail.next = m
    st.out_tail = m
    st.out_bytes += n
    return 0


cdef void stream_queue(Stream *st, char *data, size_t n, void *owner, const char *body,
                       size_t bodylen, int end, int status, char *msg, size_t msglen) noexcept nogil:
    """Queue a framed message (`data`, then the body `owner` holds if any) and/or the
    final status; takes ownership of data, owner and msg."""
    cdef nghttp2_nv nva[4]
    cdef char digits[12]
    cdef nghttp2_data_provider provider
    if st.finished or (data != NULL and out_append(st, data, n, NULL) < 0):
        free(data)
        free(msg)
        release_owner(st.conn.loop, owner)
        return
    if owner != NULL and out_append(st, body, bodylen, owner) < 0:
        free(msg)
        release_owner(st.conn.loop, owner)
        return
    if end:
        st.finished = 1
        st.status = status
        st.msg = msg
        st.msglen = msglen
    else:
        free(msg)
    nva[0] = make_nv(":status", "200", 3, 0)
    nva[1] = make_nv("content-type", "application/grpc", 16, 0)
    if not st.responded:
        st.responded = 1
        if st.out_head == NULL and st.finished:
            # Trailers-only: one HEADERS frame with the status, ending the stream.
            nghttp2_submit_response(st.conn.session, st.id, nva,
                                    2 + status_nvs(st, nva + 2, digits), NULL)
        else:
            provider.source.ptr = st
            provider.read_callback = read_response
            nghttp2_submit_response(st.conn.session, st.id, nva, 2, &provider)
    elif st.deferred:
        st.deferred = 0
        nghttp2_session_resume_data(st.conn.session, st.id)
    conn_mark_dirty(st.conn)


DEF MAX_HTTP_HEADERS = 16


cdef void stream_respond_http(Stream *st, int status, char *headers, size_t headerslen,
                              char *body, size_t n) noexcept nogil:
    """Answer a plain HTTP request: :status, `headers` ("name\\0value\\0"..., names
    lowercase), then `body`, ending the stream. Takes ownership of headers and body."""
    cdef nghttp2_nv nva[MAX_HTTP_HEADERS + 1]
    cdef nghttp2_data_provider provider
    cdef char digits[12]
    cdef size_t pos = 0, namelen, valuelen
    cdef int count = 1
    if st.finished or not st.http:
        free(headers)
        free(body)
        return
    st.finished = 1
    st.responded = 1
    snprintf(digits, 12, "%d", status)
    nva[0] = make_nv(":status", digits, strlen(digits), 1)
    while pos < headerslen and count <= MAX_HTTP_HEADERS:
        namelen = strlen(headers + pos)
        valuelen = strlen(headers + pos + namelen + 1)
        nva[count].name = <uint8_t *>(headers + pos)
        nva[count].namelen = namelen
        nva[count].value = <uint8_t *>(headers + pos + namelen + 1)
        nva[count].valuelen = valuelen
        nva[count].flags = NGHTTP2_NV_FLAG_NONE  # copied: `headers` is freed below
        count += 1
        pos += namelen + valuelen + 2
    if n:
        st.out_head = st.out_tail = <OutMsg *>calloc(1, sizeof(OutMsg))
        if st.out_head == NULL:
            free(body)
            n = 0
        else:
            st.out_head.data = body
            st.out_head.len = n
            st.out_bytes = n
    else:
        free(body)
    if n:
        provider.source.ptr = st
        provider.read_callback = read_response
        nghttp2_submit_response(st.conn.session, st.id, nva, count, &provider)
    else:
        nghttp2_submit_response(st.conn.session, st.id, nva, count, NULL)
    free(headers)
    conn_mark_dirty(st.conn)
