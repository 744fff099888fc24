build-clang/obj/src/sources/postgres.o: src/sources/postgres.c \
  /usr/include/postgresql/libpq-fe.h \
  /usr/include/postgresql/postgres_ext.h \
  /usr/include/postgresql/pg_config_ext.h src/core/params.h \
  src/core/config.h src/core/error.h src/core/writeback.h \
  src/core/project.h src/core/prf.h src/core/runlog.h \
  src/sources/source.h src/core/value.h

/usr/include/postgresql/libpq-fe.h:

/usr/include/postgresql/postgres_ext.h:

/usr/include/postgresql/pg_config_ext.h:

src/core/params.h:

src/core/config.h:

src/core/error.h:

src/core/writeback.h:

src/core/project.h:

src/core/prf.h:

src/core/runlog.h:

src/sources/source.h:

src/core/value.h:
