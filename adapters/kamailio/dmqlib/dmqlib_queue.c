/* dmqlib - bounded shared-memory queues woken by an eventfd.
 *
 * One gen_lock_t per queue guards a singly linked FIFO of shm items and its
 * count and byte budgets. Producers never block: a push over either budget
 * fails, is counted, and the caller frees the item. The eventfd is written
 * only on the empty -> non-empty transition (one syscall per batch, not per
 * item); the consumer takes the whole list at once, so a wake-up that finds
 * the queue empty is harmless.
 *
 * The io process reads its queue's eventfd from a uv_poll, so that one is
 * non-blocking; a worker blocks in read() on its own (O_NONBLOCK belongs to
 * the open file description shared by every process, hence one flag per
 * queue, decided at creation in mod_init).
 */
#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../core/dprint.h"
#include "../../core/mem/shm_mem.h"

#include "dmqlib.h"

int dql_queue_init(dql_queue_t *q, uint32_t max_count, uint64_t max_bytes,
		int nonblocking_efd)
{
	memset(q, 0, sizeof(*q));
	if(lock_init(&q->lock) == NULL)
		return -1;
	q->max_count = max_count;
	q->max_bytes = max_bytes;
	/* pressure at 3/4 of either budget, released at 1/4 */
	q->high_mark = max_count - max_count / 4;
	q->low_mark = max_count / 4;
	q->efd = eventfd(0, EFD_CLOEXEC | (nonblocking_efd ? EFD_NONBLOCK : 0));
	if(q->efd < 0) {
		LM_ERR("eventfd: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

void dql_queue_wake(dql_queue_t *q)
{
	uint64_t one = 1;
	ssize_t n;
	do {
		n = write(q->efd, &one, sizeof(one));
	} while(n < 0 && errno == EINTR);
	/* EAGAIN only if the counter is at 2^64-2: the consumer is awake anyway */
}

int dql_queue_push(dql_queue_t *q, dql_item_t *it)
{
	int was_empty;
	it->next = NULL;
	lock_get(&q->lock);
	if(q->count >= q->max_count || q->bytes + it->size > q->max_bytes) {
		q->dropped++;
		q->dropped_bytes += it->size;
		lock_release(&q->lock);
		return -1;
	}
	was_empty = (q->head == NULL);
	if(q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->count++;
	q->bytes += it->size;
	q->pushed++;
	if(q->count > q->peak_count)
		q->peak_count = q->count;
	if(q->bytes > q->peak_bytes)
		q->peak_bytes = q->bytes;
	if(q->count >= q->high_mark || q->bytes >= q->max_bytes - q->max_bytes / 4)
		q->pressure = 1;
	lock_release(&q->lock);
	if(was_empty) {
		if(!q->track_sleep) {
			dql_queue_wake(q);
		} else {
			/* pairs with the fence in dql_queue_sleeping(): either the
			 * consumer sees our item before it blocks, or we see it asleep */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			if(q->sleeping)
				dql_queue_wake(q);
		}
	}
	return 0;
}

void dql_queue_sleeping(dql_queue_t *q, int sleeping)
{
	q->sleeping = sleeping;
	if(sleeping) {
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if(dql_queue_count(q) > 0)
			dql_queue_wake(q); /* pushed while we were awake: do not block */
	}
}

dql_item_t *dql_queue_push_list(dql_queue_t *q, dql_item_t *head)
{
	dql_item_t *next;
	int was_empty, pushed = 0;
	if(head == NULL)
		return NULL;
	lock_get(&q->lock);
	was_empty = (q->head == NULL);
	for(; head; head = next) {
		next = head->next;
		if(q->count >= q->max_count || q->bytes + head->size > q->max_bytes)
			break; /* keep the order: nothing after it either */
		head->next = NULL;
		if(q->tail)
			q->tail->next = head;
		else
			q->head = head;
		q->tail = head;
		q->count++;
		q->bytes += head->size;
		q->pushed++;
		pushed++;
	}
	if(q->count > q->peak_count)
		q->peak_count = q->count;
	if(q->bytes > q->peak_bytes)
		q->peak_bytes = q->bytes;
	if(head != NULL || q->count >= q->high_mark
			|| q->bytes >= q->max_bytes - q->max_bytes / 4)
		q->pressure = 1;
	lock_release(&q->lock);
	if(was_empty && pushed)
		dql_queue_wake(q);
	return head;
}

dql_item_t *dql_queue_take(dql_queue_t *q)
{
	dql_item_t *l;
	lock_get(&q->lock);
	l = q->head;
	q->popped += q->count;
	q->head = q->tail = NULL;
	q->count = 0;
	q->bytes = 0;
	lock_release(&q->lock);
	return l;
}

void dql_queue_wait(dql_queue_t *q)
{
	uint64_t v;
	ssize_t n;
	do {
		n = read(q->efd, &v, sizeof(v));
	} while(n < 0 && errno == EINTR);
}

uint32_t dql_queue_count(dql_queue_t *q)
{
	return *(volatile uint32_t *)&q->count;
}

/* ------------------------------------------------------------------------ */
/* item pool (dmqlib.h): per size class, a free list in shm                  */

/* every block starts with this prefix; the item follows it, so callers that
 * memset their item do not erase which list the block goes back to */
typedef struct dql_blk {
	union {
		struct dql_blk *next; /* on a free list */
		uint64_t cls;		  /* in use: class index + 1, 0 = plain shm */
	} u;
	uint64_t pad; /* keeps the item 16-byte aligned, like shm_malloc */
} dql_blk_t;

typedef struct dql_pool_class {
	gen_lock_t lock;
	dql_blk_t *free;
	uint64_t nfree;
} dql_pool_class_t;

typedef struct dql_pool {
	dql_pool_class_t cls[DQL_POOL_CLASSES];
	gen_lock_t grow_lock;
	uint64_t pooled, max_bytes;
	uint64_t plain; /* blocks allocated outside the pool (counter) */
} dql_pool_t;

static dql_pool_t *dql_pool;

#define DQL_POOL_CHUNK 65536 /* carved per growth of a class */

int dql_pool_init(uint64_t max_bytes)
{
	int i;
	if(dql_pool)
		return 0;
	dql_pool = shm_malloc(sizeof(*dql_pool));
	if(dql_pool == NULL) {
		SHM_MEM_ERROR;
		return -1;
	}
	memset(dql_pool, 0, sizeof(*dql_pool));
	for(i = 0; i < DQL_POOL_CLASSES; i++)
		if(lock_init(&dql_pool->cls[i].lock) == NULL)
			return -1;
	if(lock_init(&dql_pool->grow_lock) == NULL)
		return -1;
	dql_pool->max_bytes = max_bytes;
	return 0;
}

static size_t dql_pool_class_size(int c)
{
	return (size_t)128 << c;
}

/* carve one chunk into blocks of class c; the caller holds cls[c].lock */
static int dql_pool_grow(int c)
{
	size_t bsz = sizeof(dql_blk_t) + dql_pool_class_size(c);
	size_t n = DQL_POOL_CHUNK / bsz, i;
	char *chunk;
	lock_get(&dql_pool->grow_lock);
	if(dql_pool->pooled + n * bsz > dql_pool->max_bytes) {
		lock_release(&dql_pool->grow_lock);
		return -1;
	}
	dql_pool->pooled += n * bsz;
	lock_release(&dql_pool->grow_lock);
	chunk = shm_malloc(n * bsz);
	if(chunk == NULL) {
		lock_get(&dql_pool->grow_lock);
		dql_pool->pooled -= n * bsz;
		lock_release(&dql_pool->grow_lock);
		return -1;
	}
	for(i = 0; i < n; i++) {
		dql_blk_t *b = (dql_blk_t *)(chunk + i * bsz);
		b->u.next = dql_pool->cls[c].free;
		dql_pool->cls[c].free = b;
	}
	dql_pool->cls[c].nfree += n;
	return 0;
}

void *dql_item_alloc(size_t sz)
{
	dql_blk_t *b = NULL;
	int c;
	if(dql_pool != NULL && sz <= DQL_POOL_MAX_ITEM) {
		for(c = 0; dql_pool_class_size(c) < sz; c++)
			;
		lock_get(&dql_pool->cls[c].lock);
		if(dql_pool->cls[c].free == NULL)
			dql_pool_grow(c);
		b = dql_pool->cls[c].free;
		if(b) {
			dql_pool->cls[c].free = b->u.next;
			dql_pool->cls[c].nfree--;
		}
		lock_release(&dql_pool->cls[c].lock);
		if(b) {
			b->u.cls = (uint64_t)c + 1;
			return b + 1;
		}
	}
	b = shm_malloc(sizeof(*b) + sz);
	if(b == NULL)
		return NULL;
	b->u.cls = 0;
	if(dql_pool)
		__atomic_add_fetch(&dql_pool->plain, 1, __ATOMIC_RELAXED);
	return b + 1;
}

void dql_item_free(dql_item_t *it)
{
	dql_blk_t *b;
	uint64_t c;
	if(it == NULL)
		return;
	b = (dql_blk_t *)it - 1;
	c = b->u.cls;
	if(c == 0 || c > DQL_POOL_CLASSES || dql_pool == NULL) {
		shm_free(b);
		return;
	}
	c--;
	lock_get(&dql_pool->cls[c].lock);
	b->u.next = dql_pool->cls[c].free;
	dql_pool->cls[c].free = b;
	dql_pool->cls[c].nfree++;
	lock_release(&dql_pool->cls[c].lock);
}

void dql_pool_stats(uint64_t *pooled, uint64_t *free_bytes, uint64_t *plain)
{
	int c;
	uint64_t f = 0;
	*pooled = *free_bytes = *plain = 0;
	if(dql_pool == NULL)
		return;
	for(c = 0; c < DQL_POOL_CLASSES; c++)
		f += dql_pool->cls[c].nfree
			 * (sizeof(dql_blk_t) + dql_pool_class_size(c));
	*pooled = dql_pool->pooled;
	*free_bytes = f;
	*plain = dql_pool->plain;
}
