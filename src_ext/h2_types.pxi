# The native server's C state. Everything here is owned by the event loop
# thread except the two queues, which are guarded by their own mutexes.

# Events the loop hands to the Python workers (Event.kind).
DEF EV_REQUEST = 0      # one complete gRPC message of a known method
DEF EV_OPEN = 1         # a streaming call started (SESSION / EACH_MESSAGE)
DEF EV_HALF_CLOSE = 2   # the client ended its side of a streaming call
DEF EV_CLOSED = 3       # a streaming call is gone (reset, connection closed, finished)
DEF EV_UNKNOWN = 4      # a call of a path not in the table (data: the path)
DEF EV_DRAINED = 5      # a call's queued response bytes fell to DRAIN_LOW_WATER (asked by R_DRAIN)
DEF EV_WAKE = 6         # Python asked for a turn of a call on a worker (`NativeServer.wake`)
DEF EV_GONE = 7         # a call whose sender waits for EV_DRAINED is gone (reset, connection closed)
DEF EV_HTTP = 8         # a plain HTTP request (data: its request line; sid 0 for HTTP/1)
DEF EV_RELEASE = 9      # response bodies the loop is done with wait for the GIL (next_events drops them)

# What Python hands to the loop (Reply.kind).
DEF R_MESSAGE = 0       # a response message and/or the call's final status
DEF R_GOAWAY = 1        # stop accepting, GOAWAY every connection
DEF R_CLOSE_ALL = 2     # close every connection
DEF R_EXIT = 3          # leave the loop
DEF R_SET_TLS = 4       # listener `sid` serves new connections with `ctx`
DEF R_DRAIN = 5         # EV_DRAINED once the call has at most DRAIN_LOW_WATER bytes queued (EV_GONE if it goes)
DEF R_HTTP = 6          # a plain HTTP response: raw HTTP/1 bytes (sid 0), or an HTTP/2 one

DEF READ_CHUNK = 65536
DEF TIMEOUT_MALFORMED = -2  # parse_grpc_timeout's answer to what grpc-go refuses
DEF SEND_IOV_MAX = 16  # a DATA frame sent from its messages: header + up to 15 pieces
DEF INLINE_BUDGET_US = 300  # the loop's own turn at requests (loop_dispatch)
DEF SPIN_US = 100  # the loop polls this long after serving requests itself
DEF WRITE_HIGH_WATER = 65536
DEF MAX_LISTENERS = 32
DEF MAX_EVENTS = 256
DEF DRAIN_LOW_WATER = 262144
DEF SHARE_MIN = 65536  # a response body this big is sent from its bytes object, not copied
DEF ACCEPT_RETRY_MS = 100  # out of descriptors: listeners rest this long
DEF HTTP1_HEAD_LIMIT = 16384  # the most an HTTP/1 request head may take


cdef struct Event:
    Event *next
    int kind
    int fd
    uint32_t gen
    int32_t sid
    int method
    char *data
    size_t len
    char *token            # the "token" request header, NUL-terminated, or NULL
    char *cert_cn          # the verified client certificate's CN, or NULL
    int64_t deadline_us    # grpc-timeout's deadline, CLOCK_MONOTONIC microseconds; -1: none
    uint32_t seq           # order of OPEN/REQUEST/HALF_CLOSE/CLOSED within the call


cdef struct Reply:
    Reply *next
    int kind
    int fd
    uint32_t gen
    int32_t sid
    char *data             # a framed gRPC message (5-byte prefix), or NULL
    size_t len
    void *owner            # a bytes object (a reference) holding the message's body, sent
    const char *body       # after `data` (then only the prefix) without a copy, or NULL
    size_t bodylen
    int end                # the call ends with `status` after `data`
    int status             # grpc-status; R_HTTP: the HTTP status
    char *msg              # grpc-message, already percent-encoded; R_HTTP: "name\0value\0"...
    size_t msglen
    void *ctx              # R_SET_TLS: the SSL_CTX


cdef struct EventQueue:
    pthread_mutex_t lock
    pthread_cond_t ready
    Event *head
    Event *tail
    int closed
    int waiting            # workers blocked waiting for an event
    int turn_limit         # events a worker takes at once (its last events_pop's)


cdef struct ReplyQueue:
    pthread_mutex_t lock
    Reply *head
    Reply *tail


cdef struct ReleaseQueue:
    pthread_mutex_t lock
    OutMsg *head           # messages whose owner needs the GIL to be let go of


cdef struct OutMsg:
    OutMsg *next
    const char *data       # malloc'd, or inside `owner`
    size_t len
    size_t off
    void *owner            # a bytes object (a reference) `data` points into, or NULL


cdef struct Buf:
    char *data
    size_t len
    size_t cap


cdef struct Conn


cdef struct Stream:
    Stream *prev
    Stream *next
    Conn *conn
    int32_t id
    int method             # index in the method table; -1: path unknown
    int shape
    int get                # :method is GET
    int http               # a plain HTTP request (not gRPC), answered by EV_HTTP's reply
    char *path
    size_t pathlen
    char *token
    char *encoding         # grpc-encoding other than identity, or NULL
    int bad_content_type
    int bad_timeout        # grpc-timeout grpc-go cannot parse
    char *content_type
    int64_t deadline_us    # from grpc-timeout, as in Event
    Buf inbuf              # received bytes not yet a whole message
    int dispatched         # unary: its request went to Python
    int python_open        # Python holds state for it and must hear EV_CLOSED
    int responded          # response headers submitted
    int finished           # the final status is known (nothing more may be queued)
    int status
    char *msg
    size_t msglen
    OutMsg *out_head
    OutMsg *out_tail
    size_t out_bytes
    int deferred           # the data provider returned DEFERRED
    int drain_wanted       # Python waits for EV_DRAINED
    uint32_t seq           # the next event's sequence number


cdef struct Loop


cdef struct Conn:
    Loop *loop
    int fd
    uint32_t gen
    SSL *ssl
    int handshaking
    nghttp2_session *session  # NULL until the client's first bytes show HTTP/2 (see conn_sniff)
    int http1              # the client speaks HTTP/1: one request, answered, then closed
    int http1_asked        # its request went to Python
    int closing            # close once wbuf is written (HTTP/1)
    int read_eof           # the HTTP/1 client half-closed: stop watching for reads
    Buf inbuf              # bytes read before the protocol was known / the HTTP/1 request
    Stream *streams
    char *cert_cn
    Buf wbuf               # bytes produced by nghttp2/TLS not yet written
    uint32_t armed         # epoll events currently registered
    int dead               # closed at the end of the current iteration
    int dirty
    Conn *next_dirty
    int64_t last_ping_ms   # keepalive (h2_keepalive.pxi): the client's last PING, -1: none
    int data_since_ping    # DATA sent since that PING
    int ping_strikes
    int close_when_sent    # GOAWAY queued: close once everything is written


cdef struct Listener:
    int fd
    SSL_CTX *ctx           # NULL: plain


cdef struct Loop:
    int epfd
    int evfd
    Conn **conns           # by fd
    int nconns
    int live_conns
    uint32_t next_gen
    Listener listeners[MAX_LISTENERS]
    int nlisteners
    int accepting
    int64_t accept_resume_ms  # listeners left epoll after EMFILE; back at this time (0: not paused)
    int running
    char **paths
    size_t *pathlens
    int *shapes
    int *quick             # by method: its requests never block a worker (see events_pop)
    int *inline            # by method: its requests may be served on the loop (loop_dispatch)
    void *inline_turn      # the Python callable that serves it (NULL: never inline)
    pthread_t thread       # the loop's own
    int workers            # Python's worker threads (NativeServer.add_worker)
    int signals_owed       # events the loop queued this iteration, no worker woken yet
    int served_inline      # the last iteration served requests (then the loop polls a while)
    int nmethods
    uint32_t max_recv
    EventQueue events
    ReplyQueue replies
    ReleaseQueue released
    Conn *dirty
    nghttp2_session_callbacks *callbacks
    nghttp2_option *option

# HTTP/2 settings we announce. grpc-go's server allows unlimited concurrent
# streams (etcd's default too); a kube-apiserver multiplexes its watches on
# few connections. Windows are larger than grpc-go's 64 KiB start so a
# 1.5 MiB put needs no round trip per 64 KiB.
DEF MAX_CONCURRENT_STREAMS = 1000000
DEF STREAM_WINDOW = 1048576
DEF CONNECTION_WINDOW = 16777216
