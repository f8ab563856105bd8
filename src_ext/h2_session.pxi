# libnghttp2's callbacks: they turn frames into per-stream state and
# gRPC-level steps (h2_grpc.pxi). They run on the loop thread, without the GIL.


cdef int header_is(const uint8_t *name, size_t namelen, const char *literal) noexcept nogil:
    cdef size_t n = strlen(literal)
    return namelen == n and memcmp(name, literal, n) == 0


cdef int64_t parse_grpc_timeout(const uint8_t *value, size_t n) noexcept nogil:
    """grpc-timeout ("<1-8 digits><unit>") in microseconds, parsed as grpc-go
    does (Go's ParseInt: a sign may lead; a negative timeout has expired:
    0); TIMEOUT_MALFORMED if grpc-go refuses it."""
    cdef int64_t amount = 0
    cdef size_t i, first = 0
    cdef int sign = 1
    cdef uint8_t unit
    if n < 2 or n > 9:
        return TIMEOUT_MALFORMED
    if value[0] == c'+' or value[0] == c'-':
        sign = -1 if value[0] == c'-' else 1
        first = 1
    if first == n - 1:
        return TIMEOUT_MALFORMED  # a sign alone
    for i in range(first, n - 1):
        if value[i] < c'0' or value[i] > c'9':
            return TIMEOUT_MALFORMED
        amount = amount * 10 + (value[i] - c'0')
    if sign < 0 and amount:
        return 0 if value[n - 1] in b"HMSmun" else TIMEOUT_MALFORMED
    unit = value[n - 1]
    if unit == c'H':
        return amount * 3600000000LL
    if unit == c'M':
        return amount * 60000000LL
    if unit == c'S':
        return amount * 1000000
    if unit == c'm':
        return amount * 1000
    if unit == c'u':
        return amount
    if unit == c'n':
        return amount // 1000
    return TIMEOUT_MALFORMED


cdef int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                          void *user_data) noexcept nogil:
    cdef Conn *conn = <Conn *>user_data
    cdef Stream *st
    if frame.hd.type != NGHTTP2_HEADERS or frame.headers.cat != NGHTTP2_HCAT_REQUEST:
        return 0
    st = stream_new(conn, frame.hd.stream_id)
    if st == NULL:
        return NGHTTP2_ERR_CALLBACK_FAILURE
    nghttp2_session_set_stream_user_data(session, frame.hd.stream_id, st)
    return 0


cdef int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                   size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                   void *user_data) noexcept nogil:
    cdef Stream *st
    cdef int64_t timeout_us
    if frame.hd.type != NGHTTP2_HEADERS:
        return 0
    st = <Stream *>nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
    if st == NULL or st.responded:
        return 0  # trailers of a request, or a stream already answered
    if header_is(name, namelen, ":method"):
        st.get = header_is(value, valuelen, "GET")
    elif header_is(name, namelen, ":path"):
        free(st.path)
        st.path = dup_bytes(<const char *>value, valuelen)
        st.pathlen = valuelen
    elif header_is(name, namelen, "content-type"):
        free(st.content_type)
        st.content_type = dup_bytes(<const char *>value, valuelen)
        # grpc-go accepts application/grpc, optionally followed by +subtype or ;params.
        st.bad_content_type = not (
            valuelen >= 16 and memcmp(value, b"application/grpc", 16) == 0
            and (valuelen == 16 or value[16] == c'+' or value[16] == c';')
        )
    elif header_is(name, namelen, "grpc-encoding"):
        free(st.encoding)
        st.encoding = NULL
        if not header_is(value, valuelen, "identity"):
            st.encoding = dup_bytes(<const char *>value, valuelen)
    elif header_is(name, namelen, "token"):
        free(st.token)
        st.token = dup_bytes(<const char *>value, valuelen)
    elif header_is(name, namelen, "grpc-timeout"):
        timeout_us = parse_grpc_timeout(value, valuelen)
        st.bad_timeout = timeout_us == TIMEOUT_MALFORMED
        st.deadline_us = monotonic_us() + timeout_us if timeout_us >= 0 else -1
    return 0


cdef int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame,
                       void *user_data) noexcept nogil:
    cdef Stream *st
    if frame.hd.type == NGHTTP2_PING and not frame.hd.flags & NGHTTP2_FLAG_ACK:
        keepalive_ping(<Conn *>user_data)
        return 0
    if frame.hd.type != NGHTTP2_HEADERS and frame.hd.type != NGHTTP2_DATA:
        return 0
    st = <Stream *>nghttp2_session_get_stream_user_data(session, frame.hd.stream_id)
    if st == NULL:
        return 0
    if frame.hd.type == NGHTTP2_HEADERS and frame.headers.cat == NGHTTP2_HCAT_REQUEST:
        stream_headers_done(st)
    if frame.hd.flags & NGHTTP2_FLAG_END_STREAM:
        stream_remote_end(st)
    return 0


cdef int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                            const uint8_t *data, size_t n, void *user_data) noexcept nogil:
    cdef Stream *st = <Stream *>nghttp2_session_get_stream_user_data(session, stream_id)
    if st != NULL:
        stream_data(st, data, n)
    return 0


cdef int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                         void *user_data) noexcept nogil:
    cdef Stream *st = <Stream *>nghttp2_session_get_stream_user_data(session, stream_id)
    if st == NULL:
        return 0
    stream_closed_events(st)
    nghttp2_session_set_stream_user_data(session, stream_id, NULL)
    stream_free(st)
    return 0


cdef nghttp2_session_callbacks *make_callbacks() noexcept nogil:
    cdef nghttp2_session_callbacks *cbs
    if nghttp2_session_callbacks_new(&cbs) != 0:
        return NULL
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers)
    nghttp2_session_callbacks_set_on_header_callback(cbs, on_header)
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv)
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv)
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close)
    nghttp2_session_callbacks_set_send_data_callback(cbs, send_data)
    return cbs


cdef int session_open(Conn *conn) noexcept nogil:
    """The HTTP/2 server session of a connection, with our SETTINGS queued."""
    cdef nghttp2_settings_entry iv[2]
    if nghttp2_session_server_new2(&conn.session, conn.loop.callbacks, conn,
                                   conn.loop.option) != 0:
        return -1
    iv[0].settings_id = NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS
    iv[0].value = MAX_CONCURRENT_STREAMS
    iv[1].settings_id = NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE
    iv[1].value = STREAM_WINDOW
    nghttp2_submit_settings(conn.session, NGHTTP2_FLAG_NONE, iv, 2)
    nghttp2_session_set_local_window_size(conn.session, NGHTTP2_FLAG_NONE, 0, CONNECTION_WINDOW)
    keepalive_init(conn)
    conn_mark_dirty(conn)
    return 0
