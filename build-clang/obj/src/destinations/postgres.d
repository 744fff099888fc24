build-clang/obj/src/destinations/postgres.o: src/destinations/postgres.c \
  /usr/include/postgresql/libpq-fe.h \
  /usr/include/postgresql/postgres_ext.h \
  /usr/include/postgresql/pg_config_ext.h src/core/log.h \
  src/core/writeback.h src/core/config.h src/core/error.h \
  src/core/project.h src/core/prf.h src/core/runlog.h \
  src/destinations/destination.h src/core/mapping.h src/core/jsonw.h \
  src/core/value.h src/core/params.h

/usr/include/postgresql/libpq-fe.h:

/usr/include/postgresql/postgres_ext.h:

/usr/include/postgresql/pg_config_ext.h:

src/core/log.h:

src/core/writeback.h:

src/core/config.h:

src/core/error.h:

src/core/project.h:

src/core/prf.h:

src/core/runlog.h:

src/destinations/destination.h:

src/core/mapping.h:

src/core/jsonw.h:

src/core/value.h:

src/core/params.h:
