# The replicator daemon, as docker-compose.yml runs it. The config file is mounted at /etc/replicator/config.yaml.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Everything .dockerignore lets through: sources, tsconfig*.json, bin/ (not each folder by name: git drops empty ones).
COPY . .
RUN npm run build

# Runtime: production dependencies, the compiled output and the launcher only.
FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
USER node
EXPOSE 9464
CMD ["node","bin/replicator.js","start","--config","/etc/replicator/config.yaml"]
