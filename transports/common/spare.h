/* libdmq - the spare descriptor of a process, for accepting under
 * descriptor exhaustion.
 *
 * When accept() fails with EMFILE/ENFILE and no idle connection can be
 * closed, the pending connection would wait in the backlog (its peer's
 * connect succeeded, its messages go nowhere) and the listener would stay
 * readable. One descriptor is kept in reserve for the whole process
 * (descriptors are a process resource, so one is enough whatever the
 * number of transports): it is closed, the pending connection is accepted
 * on the freed slot and closed at once (its peer sees the connection
 * end), and the spare is reopened. Thread-safe (a mutex), so transports on
 * different loops and threads share it.
 */
#ifndef DMQ_TRANSPORTS_COMMON_SPARE_H
#define DMQ_TRANSPORTS_COMMON_SPARE_H

/* A transport starts / stops needing the spare: the first opens it, the
 * last closes it. */
void dmq__spare_attach(void);
void dmq__spare_detach(void);
/* Accept one pending connection on lfd with the spare and close it.
 * 1 if a connection was refused so, 0 if not (no spare: it could not be
 * reopened since the last use; or nothing pending). */
int dmq__spare_refuse(int lfd);

#endif
