/* libdmq - version and export macros. */
#ifndef DMQ_VERSION_H
#define DMQ_VERSION_H

#define DMQ_VERSION_MAJOR 0
#define DMQ_VERSION_MINOR 3
#define DMQ_VERSION_PATCH 0
#define DMQ_VERSION_HEX                                                        \
  ((DMQ_VERSION_MAJOR << 16) | (DMQ_VERSION_MINOR << 8) | DMQ_VERSION_PATCH)

#if defined(DMQ_BUILDING) && defined(__GNUC__)
#define DMQ_EXTERN __attribute__((visibility("default")))
#else
#define DMQ_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library actually linked (compare with DMQ_VERSION_HEX). */
DMQ_EXTERN unsigned dmq_version(void);
/* "major.minor.patch" */
DMQ_EXTERN const char *dmq_version_string(void);

#ifdef __cplusplus
}
#endif
#endif
