build-clang/obj/src/destinations/webhook.o: src/destinations/webhook.c \
  src/core/log.h src/destinations/destination.h src/core/config.h \
  src/core/error.h src/core/mapping.h src/core/jsonw.h src/core/value.h \
  src/core/prf.h src/core/params.h

src/core/log.h:

src/destinations/destination.h:

src/core/config.h:

src/core/error.h:

src/core/mapping.h:

src/core/jsonw.h:

src/core/value.h:

src/core/prf.h:

src/core/params.h:
