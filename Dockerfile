# The bridge in a container: slim, non-root, exec-form, no secrets in the image (every key and
# secret comes from the environment at run time). docs/deploy.md#docker says how to run it.
FROM python:3.12-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /venv
WORKDIR /src
# The pinned dependencies first (all of requirements.txt but the project's own line), in a layer
# that is built again only when requirements.txt changes.
COPY requirements.txt ./
RUN grep -vx '\.' requirements.txt > /tmp/pinned.txt && /venv/bin/pip install -r /tmp/pinned.txt
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN /venv/bin/pip install --no-deps .

FROM python:3.12-slim
RUN useradd --system --uid 10001 --user-group --no-create-home bridge \
    && mkdir /data && chown bridge:bridge /data
COPY --from=build /venv /venv
COPY mappings /app/mappings
ENV PATH="/venv/bin:$PATH" PYTHONUNBUFFERED=1 PORT=8080 BRIDGE_MAPPINGS_DIR=/app/mappings
# The SQLite default (bridge.db in the working directory) lands in /data: mount a volume there, or
# set DATABASE_URL. The image sets no database URL, so the platform's DATABASE_URL is the one used.
WORKDIR /data
USER bridge
EXPOSE 8080
CMD ["bridge", "serve"]
