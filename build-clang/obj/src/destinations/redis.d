build-clang/obj/src/destinations/redis.o: src/destinations/redis.c \
  /usr/include/hiredis/hiredis.h /usr/include/hiredis/read.h \
  /usr/include/hiredis/sds.h /usr/include/hiredis/alloc.h src/core/log.h \
  src/destinations/destination.h src/core/config.h src/core/error.h \
  src/core/mapping.h src/core/jsonw.h src/core/value.h src/core/prf.h \
  src/core/params.h

/usr/include/hiredis/hiredis.h:

/usr/include/hiredis/read.h:

/usr/include/hiredis/sds.h:

/usr/include/hiredis/alloc.h:

src/core/log.h:

src/destinations/destination.h:

src/core/config.h:

src/core/error.h:

src/core/mapping.h:

src/core/jsonw.h:

src/core/value.h:

src/core/prf.h:

src/core/params.h:
