# The replicator daemon, as docker-compose.yml runs it. The config file is mounted at /etc/replicator/config.yaml.
# Node 26: the active LTS line (Node 20 is past its end of life); CI runs the unit tests under it (.ci/run).
FROM node:26-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# `npm install` respects the lock; `npm ci` can reject a lock written by npm 11 without other platforms' optional
# packages (see .ci/run).
RUN npm install --no-audit --no-fund
# Everything .dockerignore lets through: sources, tsconfig*.json, bin/ (not each folder by name: git drops empty ones).
COPY . .
RUN npm run build

# Runtime: production dependencies, the compiled output and the launcher only.
FROM node:26-slim
ENV NODE_ENV=production
# V8 otherwise lets garbage grow the RSS far past what the buffers need (see BENCHMARKS.md, capture).
ENV NODE_OPTIONS=--max-old-space-size=256
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
USER node
EXPOSE 9464
CMD ["node","bin/replicator.js","start","--config","/etc/replicator/config.yaml"]
