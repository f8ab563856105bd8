# The hand-offs between the event loop and Python: events (loop -> worker
# threads, which block on a condition variable without the GIL), replies
# (any thread -> loop, which is woken through an eventfd), and big response
# bodies the loop sent straight from their bytes objects, back to Python to
# be let go of (the loop holds no GIL to drop a reference).


cdef char *dup_bytes(const char *src, size_t n) noexcept nogil:
    """A NUL-terminated malloc'd copy of n bytes (NULL stays NULL)."""
    if src == NULL:
        return NULL
    cdef char *out = <char *>malloc(n + 1)
    if out != NULL:
        memcpy(out, src, n)
        out[n] = 0
    return out


cdef void event_free(Event *ev) noexcept nogil:
    free(ev.data)
    free(ev.token)
    free(ev.cert_cn)
    free(ev)


cdef void out_free(Loop *loop, OutMsg *m) noexcept nogil:
    """Free a queued message; one that points into a bytes object goes to the
    release queue (an EV_RELEASE asks a worker to drop them, once per batch)."""
    cdef int was_empty
    if m.owner == NULL:
        free(<void *>m.data)
        free(m)
        return
    pthread_mutex_lock(&loop.released.lock)
    was_empty = loop.released.head == NULL
    m.next = loop.released.head
    loop.released.head = m
    pthread_mutex_unlock(&loop.released.lock)
    if was_empty:
        push_call_event(loop, EV_RELEASE, -1, 0, 0)


cdef OutMsg *released_take_all(Loop *loop) noexcept nogil:
    cdef OutMsg *head
    pthread_mutex_lock(&loop.released.lock)
    head = loop.released.head
    loop.released.head = NULL
    pthread_mutex_unlock(&loop.released.lock)
    return head


cdef void release_owner(Loop *loop, void *owner) noexcept nogil:
    """Let go of a body's bytes object (NULL: nothing) through the release queue."""
    cdef OutMsg *m
    if owner == NULL:
        return
    m = <OutMsg *>calloc(1, sizeof(OutMsg))
    if m != NULL:  # out of memory: the bytes object stays (a leak, not a crash)
        m.owner = owner
        out_free(loop, m)


cdef void reply_free(Loop *loop, Reply *r) noexcept nogil:
    """Free a reply, releasing a body it still holds."""
    release_owner(loop, r.owner)
    free(r.data)
    free(r.msg)
    free(r)


cdef inline bint on_loop(Loop *loop) noexcept nogil:
    return pthread_equal(pthread_self(), loop.thread)


cdef void events_push(Loop *loop, Event *ev) noexcept nogil:
    """Queue an event. One the loop queues wakes a worker only at the end of
    the loop's iteration (loop_dispatch), which may serve it itself."""
    cdef EventQueue *q = &loop.events
    cdef bint loop_queued = on_loop(loop)
    ev.next = NULL
    pthread_mutex_lock(&q.lock)
    if q.tail == NULL:
        q.head = ev
    else:
        q.tail.next = ev
    q.tail = ev
    if loop_queued:
        loop.signals_owed += 1
    pthread_mutex_unlock(&q.lock)
    if not loop_queued:  # after the unlock: the woken worker need not wait for it
        pthread_cond_signal(&q.ready)


cdef inline bint event_is_quick(Loop *loop, Event *ev) noexcept nogil:
    """True if handling the event never blocks its worker: a streaming call's
    step (queued to the call) or a request of a method marked quick."""
    if ev.kind == EV_REQUEST:
        return ev.method >= 0 and loop.quick[ev.method]
    return ev.kind != EV_HTTP and ev.kind != EV_UNKNOWN


cdef Event *events_pop(Loop *loop, int limit, int block) noexcept nogil:
    """Up to `limit` events as a list (linked by `next`); NULL once the queue
    is closed and empty or, unless `block`, when it is empty now. Only a run
    of quick events is taken together (one that may block goes alone), so no
    event waits behind a blocked one in a worker's hands."""
    cdef EventQueue *q = &loop.events
    cdef Event *first
    cdef Event *last
    cdef int n = 1
    pthread_mutex_lock(&q.lock)
    q.turn_limit = limit
    if block:
        q.waiting += 1
        while q.head == NULL and not q.closed:
            pthread_cond_wait(&q.ready, &q.lock)
        q.waiting -= 1
    first = last = q.head
    if first != NULL:
        while (n < limit and last.next != NULL and event_is_quick(loop, last)
               and event_is_quick(loop, last.next)):
            last = last.next
            n += 1
        q.head = last.next
        last.next = NULL
        if q.head == NULL:
            q.tail = NULL
    pthread_mutex_unlock(&q.lock)
    return first


cdef int queued_turns(Loop *loop, int most) noexcept nogil:
    """How many workers the queued events keep busy, as events_pop deals
    them out (a run of quick events per worker, one that may block alone),
    counted up to `most`. Called with the queue's lock held."""
    cdef Event *ev = loop.events.head
    cdef int turns = 0
    cdef int n
    cdef int limit = loop.events.turn_limit if loop.events.turn_limit > 0 else 1
    while ev != NULL and turns < most:
        turns += 1
        n = 1
        while (n < limit and ev.next != NULL and event_is_quick(loop, ev)
               and event_is_quick(loop, ev.next)):
            ev = ev.next
            n += 1
        ev = ev.next
    return turns


cdef void events_close(Loop *loop) noexcept nogil:
    pthread_mutex_lock(&loop.events.lock)
    loop.events.closed = 1
    pthread_cond_broadcast(&loop.events.ready)
    pthread_mutex_unlock(&loop.events.lock)


cdef void replies_push(Loop *loop, Reply *r) noexcept nogil:
    cdef ReplyQueue *q = &loop.replies
    cdef int was_empty
    cdef uint64_t one = 1
    r.next = NULL
    pthread_mutex_lock(&q.lock)
    was_empty = q.head == NULL
    if q.tail == NULL:
        q.head = r
    else:
        q.tail.next = r
    q.tail = r
    pthread_mutex_unlock(&q.lock)
    if was_empty and not on_loop(loop):  # the loop applies its own after its turn
        write(loop.evfd, &one, 8)


cdef Reply *replies_take_all(Loop *loop) noexcept nogil:
    cdef Reply *head
    pthread_mutex_lock(&loop.replies.lock)
    head = loop.replies.head
    loop.replies.head = NULL
    loop.replies.tail = NULL
    pthread_mutex_unlock(&loop.replies.lock)
    return head
