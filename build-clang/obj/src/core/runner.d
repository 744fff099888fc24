build-clang/obj/src/core/runner.o: src/core/runner.c src/core/runner.h \
  src/core/jsonw.h src/core/value.h src/core/project.h src/core/config.h \
  src/core/error.h src/core/prf.h src/core/runlog.h \
  src/core/crashpoint.h src/core/log.h src/core/mapping.h \
  src/core/state.h src/core/vault.h src/core/writeback.h \
  /usr/include/postgresql/libpq-fe.h \
  /usr/include/postgresql/postgres_ext.h \
  /usr/include/postgresql/pg_config_ext.h src/destinations/destination.h \
  src/core/params.h src/sources/source.h

src/core/runner.h:

src/core/jsonw.h:

src/core/value.h:

src/core/project.h:

src/core/config.h:

src/core/error.h:

src/core/prf.h:

src/core/runlog.h:

src/core/crashpoint.h:

src/core/log.h:

src/core/mapping.h:

src/core/state.h:

src/core/vault.h:

src/core/writeback.h:

/usr/include/postgresql/libpq-fe.h:

/usr/include/postgresql/postgres_ext.h:

/usr/include/postgresql/pg_config_ext.h:

src/destinations/destination.h:

src/core/params.h:

src/sources/source.h:
