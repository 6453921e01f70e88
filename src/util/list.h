/* libdmq - intrusive doubly linked lists: the links are fields of the
 * element (several lists may thread the same element through different
 * link pairs). */
#ifndef DMQ_UTIL_LIST_H
#define DMQ_UTIL_LIST_H

/* Unlink e from a doubly linked list: links e->prev / e->next, first
 * element *headp, last element *tailp (a list without a tail pointer
 * passes a scratch variable). e's own links are left as they are. */
#define DMQ__DL_UNLINK(e, prev, next, headp, tailp)                            \
  do {                                                                         \
    if ((e)->prev != NULL)                                                     \
      (e)->prev->next = (e)->next;                                             \
    else                                                                       \
      *(headp) = (e)->next;                                                    \
    if ((e)->next != NULL)                                                     \
      (e)->next->prev = (e)->prev;                                             \
    else                                                                       \
      *(tailp) = (e)->prev;                                                    \
  } while (0)

#endif
