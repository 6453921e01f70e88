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
